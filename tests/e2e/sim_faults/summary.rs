//! Account summary as a gateway serves it: `$LEDGER` per-currency rows, and after the first
//! answer only changed values, in batches on the scenario's cadence.

use std::collections::BTreeSet;

use ib_sim::{ControlClient, Fault, LedgerValue, Scenario};

use tws_wire::{Reply, Request, notice};

use super::{SHORT, WITHIN};
use crate::support::wire::{Read, WireClient, is_error, tags as tag_list};
use crate::support::{start_sim, start_sim_with};

const LEDGER_TAGS: [&str; 9] = [
    "AccruedCash",
    "CashBalance",
    "ExchangeRate",
    "NetLiquidationByCurrency",
    "OptionMarketValue",
    "RealizedPnL",
    "StockMarketValue",
    "TotalCashBalance",
    "UnrealizedPnL",
];

/// reqAccountSummary, then every row up to its end marker: `[account, tag, value, currency]`.
async fn summary(c: &mut WireClient, req_id: i32, tags: &str) -> Vec<Vec<String>> {
    c.request(&Request::AccountSummary { req_id, group: "All".into(), tags: tag_list(tags) }).await;
    let mut rows = Vec::new();
    loop {
        match c.read_until(WITHIN, |r| summary_id(r) == Some(req_id)).await {
            Reply::AccountSummary { account, tag, value, currency, .. } => {
                rows.push(vec![account, tag, value, currency])
            }
            Reply::AccountSummaryEnd { .. } => return rows,
            other => unreachable!("{other:?}"),
        }
    }
}

/// The request id of an account-summary row or end marker.
fn summary_id(r: &Reply) -> Option<i32> {
    match r {
        Reply::AccountSummary { req_id, .. } | Reply::AccountSummaryEnd { req_id } => Some(*req_id),
        _ => None,
    }
}

fn set(rows: &[Vec<String>], field: usize) -> BTreeSet<&str> {
    rows.iter().map(|r| r[field].as_str()).collect()
}

#[tokio::test]
async fn ledger_tags_answer_per_currency_rows() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    let accounts = BTreeSet::from(["DU1234567", "DU7654321"]);

    let base = summary(&mut c, 1, "$LEDGER").await;
    assert_eq!(base.len(), 18, "9 ledger tags × 2 accounts, base currency only: {base:?}");
    assert_eq!(set(&base, 3), BTreeSet::from(["BASE"]));
    assert_eq!(set(&base, 1), BTreeSet::from(LEDGER_TAGS));
    assert_eq!(set(&base, 0), accounts);
    assert!(base.contains(&vec!["DU1234567".into(), "CashBalance".into(), "54155.30".into(), "BASE".into()]));
    c.request(&Request::CancelAccountSummary { req_id: 1 }).await;

    let eur = summary(&mut c, 2, "$LEDGER:EUR").await;
    assert_eq!(eur.len(), 18);
    assert_eq!(set(&eur, 3), BTreeSet::from(["EUR"]));
    assert!(eur.contains(&vec!["DU7654321".into(), "CashBalance".into(), "1100.00".into(), "EUR".into()]));
    assert!(eur.contains(&vec!["DU7654321".into(), "ExchangeRate".into(), "1.0935".into(), "EUR".into()]));
    c.request(&Request::CancelAccountSummary { req_id: 2 }).await;

    let all = summary(&mut c, 3, "$LEDGER:ALL").await;
    assert_eq!(all.len(), 54, "9 tags × (BASE, EUR, USD) × 2 accounts");
    assert_eq!(set(&all, 3), BTreeSet::from(["BASE", "EUR", "USD"]));
    c.request(&Request::CancelAccountSummary { req_id: 3 }).await;

    // Plain tags and a ledger form together: each account's values, then its ledger rows.
    let mixed = summary(&mut c, 4, "NetLiquidation,$LEDGER:USD").await;
    assert_eq!(mixed.len(), 20);
    assert_eq!(mixed[0][..2], ["DU1234567", "NetLiquidation"]);
    assert_eq!(mixed[1][3], "USD");
    assert_eq!(mixed[10][..2], ["DU7654321", "NetLiquidation"]);
    assert!(summary(&mut c, 5, "$LEDGER:JPY").await.is_empty(), "a currency the accounts do not hold");

    // Account updates carry the ledger rows among the account values, as a gateway's do.
    c.request(&Request::AccountUpdates { subscribe: true, account: "DU7654321".into() }).await;
    let mut cash = Vec::new();
    loop {
        match c.read_until(WITHIN, |r| matches!(r, Reply::AccountValue { .. } | Reply::AccountDownloadEnd(_))).await {
            Reply::AccountValue { key, value, currency, .. } if key == "CashBalance" => cash.push((currency, value)),
            Reply::AccountValue { .. } => {}
            _ => break,
        }
    }
    cash.sort();
    let expected = [("BASE", "15202.85"), ("EUR", "1100.00"), ("USD", "14000.00")];
    assert_eq!(cash, expected.map(|(c, v)| (c.to_owned(), v.to_owned())));
    sim.shutdown().await;
}

#[tokio::test]
async fn at_the_default_cadence_a_change_is_not_pushed_at_once() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    summary(&mut c, 1, "NetLiquidation,$LEDGER:ALL").await;
    let mut v = sim.account_values().into_iter().find(|v| v.tag == "NetLiquidation").unwrap();
    v.value = "99.00".into();
    sim.upsert_account_values(vec![v]).unwrap();
    // The first batch is due 3 minutes after the connection started.
    assert_eq!(c.read(SHORT).await, Read::Silent, "changes wait for the 3-minute batch");
    sim.shutdown().await;
}

#[tokio::test]
async fn after_the_first_answer_only_changed_values_arrive_in_batches() {
    let sim = start_sim_with(Scenario { account_summary_refresh_ms: 50, ..Scenario::default() }).await;
    let control = ControlClient::new(sim.control_addr().unwrap());
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    let first = summary(&mut c, 7, "NetLiquidation,$LEDGER:ALL").await;
    assert_eq!(first.len(), 56);
    assert_eq!(c.read(SHORT).await, Read::Silent, "several batches pass: nothing unchanged is re-sent");

    let mut nlv =
        sim.account_values().into_iter().find(|v| v.account == "DU7654321" && v.tag == "NetLiquidation").unwrap();
    nlv.value = "20900.00".into();
    sim.upsert_account_values(vec![nlv]).unwrap();
    let eur_cash = LedgerValue {
        account: "DU1234567".into(),
        currency: "EUR".into(),
        tag: "CashBalance".into(),
        value: "3900.00".into(),
    };
    control.upsert_ledger(std::slice::from_ref(&eur_cash)).await.unwrap();
    let mut changed = Vec::new();
    for _ in 0..2 {
        match c.read_until(WITHIN, |r| summary_id(r).is_some()).await {
            Reply::AccountSummary { req_id: 7, account, tag, value, currency } => {
                changed.push(format!("{account} {tag} {value} {currency}"));
            }
            other => panic!("rows of 7 only, no end marker: {other:?}"),
        }
    }
    changed.sort();
    assert_eq!(changed, ["DU1234567 CashBalance 3900.00 EUR", "DU7654321 NetLiquidation 20900.00 USD"]);
    assert_eq!(c.read(SHORT).await, Read::Silent, "each change is sent once");
    assert!(control.ledger().await.unwrap().contains(&eur_cash));

    // While IB's link is down, batches are held; the change comes after 1102.
    sim.inject(Fault::LinkLost { restore_ms: 300, data_lost: false }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_LOST.0)).await;
    control.upsert_ledger(&[LedgerValue { value: "4000.00".into(), ..eur_cash.clone() }]).await.unwrap();
    let mut restored = false;
    let f = loop {
        let f = c.read_until(WITHIN, |_| true).await;
        restored |= is_error(notice::LINK_RESTORED_DATA_MAINTAINED.0)(&f);
        if matches!(f, Reply::AccountSummary { .. }) {
            break f;
        }
    };
    assert!(restored, "the held change arrived before 1102: {f:?}");
    let expected = Reply::AccountSummary {
        req_id: 7,
        account: "DU1234567".into(),
        tag: "CashBalance".into(),
        value: "4000.00".into(),
        currency: "EUR".into(),
    };
    assert_eq!(f, expected);

    // A cancelled subscription gets nothing more (the time request proves the cancel was read).
    c.request(&Request::CancelAccountSummary { req_id: 7 }).await;
    c.request(&Request::CurrentTime).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::CurrentTime(_))).await;
    control.upsert_ledger(&[LedgerValue { value: "1.00".into(), ..eur_cash }]).await.unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent);

    // Ledger writes are checked like the others.
    let bad = serde_json::json!([{"account": "NOPE", "currency": "EUR", "tag": "CashBalance", "value": "1"}]);
    let err = control.call("PUT", "/ledger", Some(&bad)).await;
    assert!(matches!(err, Err(ib_sim::control_client::ControlError::Status { status: 400, .. })), "{err:?}");
    sim.shutdown().await;
}
