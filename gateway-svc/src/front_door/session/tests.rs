//! A session against a state built here, without a socket: what the client is told, decoded
//! with tws-wire's client-side text decoder.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tws_wire::frame::Codec;
use tws_wire::{Reply, Request, encode_reply, frame, notice, reply};

use super::*;
use crate::front_door::rows;
use crate::front_door::subscriptions::MAX_PER_KIND;
use crate::health::SessionState;
use crate::model::{AccountRow, Row};
use crate::state::StateWriter;

/// What the test client announces and is answered at: the text codec.
const RANGE: &str = "v100..178";
const VERSION: u32 = 178;

fn keyed<T: Row>(rows: Vec<T>) -> BTreeMap<T::Key, T> {
    rows.into_iter().map(|r| (r.key(), r)).collect()
}

fn position(account: &str, con_id: i64, quantity: &str) -> PositionRow {
    PositionRow {
        account: account.into(),
        con_id,
        symbol: format!("S{con_id}"),
        sec_type: "STK".into(),
        exchange: "SMART".into(),
        currency: "USD".into(),
        quantity: quantity.into(),
        avg_cost: "10".into(),
        ..PositionRow::default()
    }
}

fn summary(account: &str, tag: &str, value: &str) -> SummaryRow {
    SummaryRow { account: account.into(), tag: tag.into(), value: value.into(), currency: "USD".into() }
}

/// Two accounts, a few positions and summary values, the session ready.
fn state() -> StateWriter {
    let state = StateWriter::new("gateway:4002", 1);
    let accounts = ["DU1", "DU2"].iter().enumerate().map(|(order, id)| AccountRow { id: (*id).into(), order });
    state.accounts.resync(1, keyed(accounts.collect()));
    state.positions.resync(1, keyed(vec![position("DU1", 1, "10"), position("DU1", 2, "-5"), position("DU2", 3, "7")]));
    let values = ["DU1", "DU2"].iter().flat_map(|a| {
        [summary(a, "NetLiquidation", "1000"), summary(a, "BuyingPower", "4000"), summary(a, "TotalCashValue", "50")]
    });
    state.summary.resync(1, keyed(values.collect()));
    state.update_health(|h| h.state = SessionState::Ready);
    state
}

fn door(state: &StateWriter) -> Arc<FrontDoor> {
    FrontDoor::new(state.reader(), CancellationToken::new(), 16)
}

/// A client of one session: it sends requests as bytes and reads what the session wrote.
struct Client {
    session: Session,
    buf: BytesMut,
    /// Output bytes read but not yet a whole frame.
    read: BytesMut,
}

impl Client {
    /// Opens a session as `client_id` and returns the start-up replies.
    fn start(door: &Arc<FrontDoor>, client_id: i32) -> (Self, Vec<Reply>) {
        Self::start_with_budget(door, client_id, output::BUDGET)
    }

    fn start_with_budget(door: &Arc<FrontDoor>, client_id: i32, budget: usize) -> (Self, Vec<Reply>) {
        let session = Session::with_budget(Arc::clone(door), 1, budget);
        let mut c = Client { session, buf: BytesMut::new(), read: BytesMut::new() };
        c.buf.extend_from_slice(&frame::client_hello(RANGE));
        assert_eq!(c.session.on_bytes(&mut c.buf), Ok(Progress::NeedBytes));
        let hello = c.take_bytes();
        let mut hello = BytesMut::from(&hello[..]);
        let body = frame::take_frame(&mut hello).expect("a frame").expect("whole");
        assert_eq!(frame::parse_server_hello(&body).map(|(v, _)| v), Some(VERSION));
        c.put(&Request::StartApi { client_id });
        assert_eq!(c.session.on_bytes(&mut c.buf), Ok(Progress::Started));
        c.session.start_up(&door.state.health());
        let replies = c.replies();
        (c, replies)
    }

    fn put(&mut self, req: &Request) {
        let mut framed = Vec::new();
        frame::put_frame(&mut framed, &req.encode_text(VERSION));
        self.buf.extend_from_slice(&framed);
    }

    /// Sends `reqs` in one read and returns everything they are answered with, writing the
    /// output whenever the session says it is full (and checking it stays near its budget).
    fn ask(&mut self, reqs: &[Request]) -> Vec<Reply> {
        for r in reqs {
            self.put(r);
        }
        let mut replies = Vec::new();
        loop {
            let progress = self.session.on_bytes(&mut self.buf).expect("no ending");
            replies.extend(self.replies());
            if progress == Progress::NeedBytes {
                return replies;
            }
        }
    }

    /// Writes and reads until the session has nothing left to do, checking before each write
    /// that the output stays within `bound`; returns what was read.
    fn drain(&mut self, bound: usize) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            let pending = self.session.output().len();
            assert!(pending <= bound, "{pending} bytes of output, more than {bound}");
            replies.extend(self.replies());
            let progress = self.session.on_bytes(&mut self.buf).expect("no ending");
            if progress == Progress::NeedBytes && !self.session.wants_write() {
                return replies;
            }
        }
    }

    /// Everything the session has written so far, as the socket would send it.
    fn take_bytes(&mut self) -> Vec<u8> {
        let bytes = self.session.output().to_vec();
        self.session.written(bytes.len());
        bytes
    }

    /// The replies written so far, decoded as a client at [`VERSION`] reads them.
    fn replies(&mut self) -> Vec<Reply> {
        let bytes = self.take_bytes();
        self.read.extend_from_slice(&bytes);
        let mut out = Vec::new();
        while let Some(body) = frame::take_frame(&mut self.read).expect("frames") {
            out.push(reply::decode_text(&body, VERSION).expect("a reply a client reads"));
        }
        out
    }
}

fn ready(state: &StateWriter, ready: bool) {
    state.update_health(|h| h.state = if ready { SessionState::Ready } else { SessionState::Degraded });
}

#[test]
fn start_up_tells_accounts_an_order_id_and_the_link() {
    let state = state();
    let door = door(&state);
    let (_c, replies) = Client::start(&door, 7);
    assert_eq!(replies, vec![Reply::ManagedAccounts("DU1,DU2".into()), Reply::NextValidId(1)]);
    // A second client with the same id is told 326, and the session ends.
    let mut dup = Session::new(Arc::clone(&door), 2);
    let mut buf = BytesMut::from(&frame::client_hello(RANGE)[..]);
    dup.on_bytes(&mut buf).expect("answered");
    dup.written(dup.output().len());
    let mut framed = Vec::new();
    frame::put_frame(&mut framed, &Request::StartApi { client_id: 7 }.encode_text(VERSION));
    buf.extend_from_slice(&framed);
    assert!(dup.on_bytes(&mut buf).is_err());
    let mut out = BytesMut::from(dup.output());
    let body = frame::take_frame(&mut out).unwrap().unwrap();
    assert_eq!(
        reply::decode_text(&body, VERSION),
        Ok(Reply::error(-1, notice::CLIENT_ID_IN_USE_CODE, notice::client_id_in_use(7)))
    );
    // While the link is down, a new client hears 1100 after the order id.
    ready(&state, false);
    let (_down, replies) = Client::start(&door, 8);
    assert_eq!(replies.last(), Some(&Reply::error(-1, notice::LINK_LOST.0, notice::LINK_LOST.1)));
}

#[test]
fn requests_are_answered_from_the_state() {
    let state = state();
    let (mut c, _) = Client::start(&door(&state), 1);
    let positions = c.ask(&[Request::Positions]);
    assert_eq!(positions.len(), 4, "{positions:?}");
    assert_eq!(positions.last(), Some(&Reply::PositionEnd));
    assert!(matches!(&positions[1], Reply::Position(p) if p.account == "DU1" && p.quantity == "-5"));

    let req = Request::AccountSummary { req_id: 3, group: "All".into(), tags: vec!["NetLiquidation".into()] };
    let rows = c.ask(&[req]);
    let accounts: Vec<_> = rows
        .iter()
        .filter_map(|r| match r {
            Reply::AccountSummary { req_id: 3, account, tag, .. } if tag == "NetLiquidation" => Some(account.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(accounts, ["DU1", "DU2"]);
    assert_eq!(rows.last(), Some(&Reply::AccountSummaryEnd { req_id: 3 }));

    let refused = c.ask(&[Request::OrderClass { msg_id: tws_wire::ids::request::PLACE_ORDER, id: 17 }]);
    assert_eq!(refused, vec![Reply::error(17, notice::READ_ONLY_CODE, notice::read_only("placeOrder"))]);
    let unknown = c.ask(&[Request::Pnl { req_id: 4, account: "NOPE".into() }]);
    assert_eq!(unknown, vec![Reply::error(4, notice::INVALID_CODE, notice::unknown_account("NOPE"))]);
}

#[test]
fn changes_are_pushed_and_nothing_flows_while_the_link_is_down() {
    let state = state();
    let (mut c, _) = Client::start(&door(&state), 1);
    c.ask(&[Request::Positions]);
    state.positions.apply(vec![position("DU1", 1, "11")], vec![]);
    c.session.on_ring(DataKind::Positions);
    let pushed = c.replies();
    assert!(matches!(&pushed[..], [Reply::Position(p)] if p.contract.con_id == 1 && p.quantity == "11"), "{pushed:?}");

    // The link goes: 1100, and a change while it is down is not sent.
    ready(&state, false);
    c.session.on_health(&state.health());
    assert_eq!(c.replies(), vec![Reply::error(-1, notice::LINK_LOST.0, notice::LINK_LOST.1)]);
    state.positions.apply(vec![position("DU1", 1, "12")], vec![]);
    c.session.on_ring(DataKind::Positions);
    assert_eq!(c.replies(), vec![]);
    // It returns: 1102, then every row of the followed kind as it is now.
    ready(&state, true);
    c.session.on_health(&state.health());
    let back = c.replies();
    let (code, text) = notice::LINK_RESTORED_DATA_MAINTAINED;
    assert_eq!(back.first(), Some(&Reply::error(-1, code, text)));
    assert_eq!(back.len(), 4, "1102 and the three positions: {back:?}");
    assert!(back.iter().any(|r| matches!(r, Reply::Position(p) if p.contract.con_id == 1 && p.quantity == "12")));
}

/// The bytes one summary row costs when it goes to `subs` `reqAccountUpdatesMulti`
/// subscriptions: what the output may exceed its budget by (it stops between rows).
fn fan_out(rows: &[SummaryRow], subs: i32) -> usize {
    let frame = |r: &Reply| 4 + encode_reply(r, Codec::Text, VERSION).len();
    rows.iter().map(|r| (0..subs).map(|id| frame(&rows::account_value_multi(id, r))).sum()).max().unwrap_or(0)
}

#[test]
fn pushes_keep_to_the_output_budget_in_order_and_lose_nothing() {
    let state = state();
    let budget = 8 * 1024;
    let (mut c, _) = Client::start_with_budget(&door(&state), 1, budget);
    let subs = MAX_PER_KIND as i32;
    let all: Vec<Request> =
        (0..subs).map(|req_id| Request::AccountUpdatesMulti { req_id, account: "All".into() }).collect();
    let answers = c.ask(&all);
    assert_eq!(answers.iter().filter(|r| matches!(r, Reply::AccountUpdateMultiEnd { .. })).count(), MAX_PER_KIND);

    // Sixty values change at once: each goes to every subscription, thousands of messages.
    let changed: Vec<SummaryRow> =
        (0..60).map(|i| summary(["DU1", "DU2"][i % 2], &format!("Tag{i:02}"), "1")).collect();
    let bound = budget + fan_out(&changed, subs);
    state.summary.apply(changed.clone(), vec![]);
    c.session.on_ring(DataKind::Summary);
    // A request read meanwhile is answered after them, not between them.
    c.put(&Request::Executions { req_id: 9 });
    let got = c.drain(bound);
    let mut expect: Vec<Reply> = keyed(changed.clone())
        .values()
        .flat_map(|r| (0..subs).map(|id| rows::account_value_multi(id, r)).collect::<Vec<_>>())
        .collect();
    expect.push(Reply::ExecutionDataEnd { req_id: 9 });
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "every change to every subscription, in order, then the answer");

    // After an outage every row goes out again, after 1102, within the same budget.
    ready(&state, false);
    c.session.on_health(&state.health());
    assert_eq!(c.drain(bound), vec![Reply::error(-1, notice::LINK_LOST.0, notice::LINK_LOST.1)]);
    ready(&state, true);
    c.session.on_health(&state.health());
    let back = c.drain(bound);
    let (code, text) = notice::LINK_RESTORED_DATA_MAINTAINED;
    assert_eq!(back.first(), Some(&Reply::error(-1, code, text)));
    let rows_now = state.summary.snapshot().rows.len();
    assert_eq!(back.len(), 1 + rows_now * MAX_PER_KIND, "1102, then every row to every subscription");
}

#[test]
fn a_client_value_is_echoed_cut_to_64_characters() {
    let state = state();
    let (mut c, _) = Client::start(&door(&state), 1);
    let long = "Ä".repeat(100_000);
    let summary = Request::AccountSummary { req_id: 2, group: long.clone(), tags: vec!["NetLiquidation".into()] };
    for req in [Request::Pnl { req_id: 1, account: long.clone() }, summary] {
        let got = c.ask(&[req]);
        let [Reply::Error { code: notice::INVALID_CODE, message, .. }] = &got[..] else { panic!("{got:?}") };
        let shown: String = message.chars().take(100).collect();
        assert!(message.contains(&format!("{}…", "Ä".repeat(64))), "{shown}");
        assert!(!message.contains(&"Ä".repeat(65)), "{} characters", message.chars().count());
    }
}

#[test]
fn a_large_answer_goes_out_within_the_budget_before_later_work() {
    let state = state();
    let many: Vec<PositionRow> = (0..2_000).map(|i| position("DU1", 100 + i, "1")).collect();
    state.positions.resync(2, keyed(many.clone()));
    let budget = 4 * 1024;
    let (mut c, _) = Client::start_with_budget(&door(&state), 1, budget);
    let biggest = many.iter().map(|p| 4 + encode_reply(&rows::position(p, false), Codec::Text, VERSION).len()).max();
    c.put(&Request::Positions);
    c.put(&Request::Executions { req_id: 9 });
    let got = c.drain(budget + biggest.unwrap_or(0));
    assert_eq!(got.len(), 2_002, "every position, the end, then the next answer");
    assert_eq!(got[2_000..], [Reply::PositionEnd, Reply::ExecutionDataEnd { req_id: 9 }]);
}
