//! The session's notice handling, without a gateway.

use std::time::Duration;

use ibapi::prelude::Notice;

use super::*;
use crate::config::Upstream;
use crate::farm::FarmStatus;
use crate::maintenance::{MaintenanceSettings, Schedule};
use crate::model::Freshness;

fn actor() -> Actor {
    let cfg = Upstream::default();
    let maintenance = Maintenance {
        schedule: Schedule::new(&MaintenanceSettings::default()).expect("no windows"),
        retry_interval: Duration::from_secs(1),
    };
    let backoff = Backoff::new(cfg.backoff);
    let state = StateWriter::new("127.0.0.1:1", 1);
    Actor {
        cfg,
        maintenance,
        state,
        shutdown: CancellationToken::new(),
        backoff,
        epoch: 1,
        sessions: 1,
        consecutive_conflicts: 0,
    }
}

fn notice(code: i32, message: &str) -> Notice {
    Notice {
        request_id: None,
        code,
        message: message.into(),
        error_time: None,
        advanced_order_reject_json: String::new(),
    }
}

#[test]
fn dropped_notices_tear_the_session_down() {
    let a = actor();
    let mut link_lost = false;
    match a.on_notice(&notice(ibapi::NOTICE_STREAM_LAG_CODE, "3 notices dropped"), &mut link_lost) {
        NoticeAction::Teardown(End::Lost { cause, reason }) => {
            assert_eq!(cause, "notice_lag");
            assert!(reason.contains("3 notices dropped"), "{reason}");
        }
        _ => panic!("a notice lag must end the session"),
    }
}

#[test]
fn a_broken_farm_is_reported_but_leaves_account_data_live() {
    let a = actor();
    a.state.positions.resync(1, std::collections::BTreeMap::new());
    a.set_state(SessionState::Ready, "live");
    let mut link_lost = false;
    let action = a.on_notice(&notice(2103, "Market data farm connection is broken:usfarm"), &mut link_lost);
    assert!(matches!(action, NoticeAction::None));
    a.refresh_ready(link_lost);
    let h = a.state.health();
    assert_eq!(h.state, SessionState::Ready, "a market-data farm does not degrade positions");
    assert_eq!(h.farms.len(), 1);
    assert_eq!((h.farms[0].name.as_str(), h.farms[0].status), ("usfarm", FarmStatus::Broken));
    assert_eq!(a.state.positions.snapshot().freshness, Freshness::Live);
    a.on_notice(&notice(2104, "Market data farm connection is OK:usfarm"), &mut link_lost);
    a.on_notice(&notice(2106, "HMDS data farm connection is OK:ushmds"), &mut link_lost);
    let farms = a.state.health().farms.clone();
    let names: Vec<_> = farms.iter().map(|f| (f.name.as_str(), f.status)).collect();
    assert_eq!(names, vec![("usfarm", FarmStatus::Ok), ("ushmds", FarmStatus::Ok)], "by name, one OK per farm");
    let metrics = a.state.metrics.render();
    assert!(metrics.contains(r#"ibgw_farm_state{farm="usfarm",kind="market_data",state="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"ibgw_farm_state{farm="usfarm",kind="market_data",state="broken"} 0"#));
}

#[test]
fn the_link_is_what_makes_data_stale() {
    let a = actor();
    a.state.positions.resync(1, std::collections::BTreeMap::new());
    let mut link_lost = false;
    a.on_notice(&notice(1100, "Connectivity between IB and Trader Workstation has been lost."), &mut link_lost);
    a.refresh_ready(link_lost);
    assert_eq!(a.state.health().state, SessionState::Degraded);
    assert!(matches!(a.state.positions.snapshot().freshness, Freshness::Stale { .. }));
}

#[test]
fn data_maintained_makes_live_only_what_this_session_has_synced() {
    let mut a = actor();
    let (lost, maintained) = (tws_wire::notice::LINK_LOST, tws_wire::notice::LINK_RESTORED_DATA_MAINTAINED);
    // Session 1 synced everything; session 2 has synced positions, and PnL is still collecting
    // its first set (it is subscribed after READY), so the PnL rows are session 1's.
    a.state.positions.resync(1, std::collections::BTreeMap::new());
    a.state.account_pnl.resync(1, std::collections::BTreeMap::new());
    a.state.mark_all_stale("upstream session lost");
    a.epoch = 2;
    a.state.positions.resync(2, std::collections::BTreeMap::new());
    let mut link_lost = false;
    a.on_notice(&notice(lost.0, lost.1), &mut link_lost);
    a.on_notice(&notice(maintained.0, maintained.1), &mut link_lost);
    assert_eq!(a.state.positions.snapshot().freshness, Freshness::Live);
    assert!(
        matches!(a.state.account_pnl.snapshot().freshness, Freshness::Stale { .. }),
        "last session's PnL must not become live on 1102"
    );
}

#[test]
fn an_answered_probe_publishes_no_health_change() {
    let a = actor();
    a.set_state(SessionState::Ready, "live");
    let (before, mut changes) = a.state.watch_health();
    a.record_probe_rtt(Duration::from_micros(1500));
    a.record_probe_rtt(Duration::from_micros(2500));
    assert!(changes.try_recv().is_err(), "an idle probe is no change a client is sent");
    let now = a.state.health();
    assert_eq!(now.version, before.version, "nor a new version");
    assert!((now.last_probe_rtt_ms - 2.5).abs() < 1e-9, "GetHealth reads the last round trip: {now:?}");
    // The next real change carries it.
    a.set_state(SessionState::Degraded, "IB link lost (1100)");
    let change = changes.try_recv().expect("a change");
    assert!((change.last_probe_rtt_ms - 2.5).abs() < 1e-9);
    assert!(
        (before.last_probe_rtt_ms).abs() < 1e-9,
        "health already published keeps its value (copy on write): {before:?}"
    );
}

#[test]
fn health_that_did_not_change_is_not_published() {
    let a = actor();
    let mut link_lost = false;
    a.on_notice(&notice(2104, "Market data farm connection is OK:usfarm"), &mut link_lost);
    let (before, mut changes) = a.state.watch_health();
    // Gateways repeat farm notices (every new connection is told each farm's state again).
    a.on_notice(&notice(2104, "Market data farm connection is OK:usfarm"), &mut link_lost);
    a.set_state(before.state, before.reason.clone());
    a.state.update_health(|h| h.client_id = before.client_id);
    assert!(changes.try_recv().is_err(), "nothing a client can see changed");
    assert_eq!(a.state.health().version, before.version);
    a.on_notice(&notice(2103, "Market data farm connection is broken:usfarm"), &mut link_lost);
    assert_eq!(changes.try_recv().expect("a farm that changed is published").farms[0].status, FarmStatus::Broken);
}
