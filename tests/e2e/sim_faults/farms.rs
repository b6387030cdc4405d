//! Named data farms: one notice per farm after START_API, `farm` faults at any time, and link
//! outages that break the OK farms and bring them back.

use ib_sim::{ControlClient, FarmKind, FarmState, Fault, Scenario};

use tws_wire::notice::{LINK_LOST, LINK_RESTORED_DATA_MAINTAINED};
use tws_wire::{Reply, Request};

use super::WITHIN;
use crate::support::start_sim_with;
use crate::support::wire::{Read, SECDEF_FARM_OK, TEXT_RANGE, TEXT_VERSION, WireClient, is_error, is_farm_notice};
use crate::support::{eventually, start_sim};

/// `(code, text)` of an error or notice.
fn notice(r: &Reply) -> (i32, String) {
    match r {
        Reply::Error { code, message, .. } => (*code, message.clone()),
        other => panic!("expected a notice, got {other:?}"),
    }
}

fn is_notice(r: &Reply) -> bool {
    matches!(r, Reply::Error { .. })
}

/// Text handshake and START_API, returning the notices that follow nextValidId: `farms` of
/// them, whatever their codes (the shared helper stops at 2158, which a broken sec-def farm
/// never sends).
async fn start(addr: std::net::SocketAddr, client_id: i32, farms: usize) -> (WireClient, Vec<(i32, String)>) {
    let mut c = WireClient::connect(addr).await.unwrap();
    assert_eq!(c.hello(TEXT_RANGE).await, Read::Hello(TEXT_VERSION));
    c.request(&Request::StartApi { client_id }).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::NextValidId(_))).await;
    let mut notices = Vec::new();
    while notices.len() < farms {
        notices.push(notice(&c.read_until(WITHIN, is_notice).await));
    }
    (c, notices)
}

fn pair(code: i32, text: &str) -> (i32, String) {
    (code, text.to_owned())
}

#[tokio::test]
async fn a_farm_fault_reaches_every_client_and_new_ones_see_the_state() {
    let sim = start_sim().await;
    let (mut a, _) = WireClient::start(sim.api_addr(), 1).await;
    let (mut b, _) = WireClient::start(sim.api_addr(), 2).await;

    sim.inject(Fault::Farm { name: "usfarm".into(), state: FarmState::Broken }).unwrap();
    for c in [&mut a, &mut b] {
        let f = c.read_until(WITHIN, is_notice).await;
        assert_eq!(f, Reply::error(-1, 2103, "Market data farm connection is broken:usfarm"));
    }
    let (_c, notices) = start(sim.api_addr(), 3, 7).await;
    assert_eq!(notices[0], pair(2103, "Market data farm connection is broken:usfarm"));
    assert_eq!(notices[1], pair(2104, "Market data farm connection is OK:eufarm"), "the other farms are untouched");

    // The control API, with each state and kind.
    let control = ControlClient::new(sim.control_addr().unwrap());
    let cases = [
        (r#"{"kind":"farm","name":"usfarm","state":"ok"}"#, 2104, "Market data farm connection is OK:usfarm"),
        (
            r#"{"kind":"farm","name":"eufarm","state":"inactive"}"#,
            2108,
            "Market data farm connection is inactive but should be available upon demand.:eufarm",
        ),
        (r#"{"kind":"farm","name":"ushmds","state":"broken"}"#, 2105, "HMDS data farm connection is broken:ushmds"),
        (
            r#"{"kind":"farm","name":"ushmds","state":"inactive"}"#,
            2107,
            "HMDS data farm connection is inactive but should be available upon demand.:ushmds",
        ),
        (r#"{"kind":"farm","name":"euhmds","state":"ok"}"#, 2106, "HMDS data farm connection is OK:euhmds"),
        (
            r#"{"kind":"farm","name":"secdefnj","state":"broken"}"#,
            2157,
            "Sec-def data farm connection is broken:secdefnj",
        ),
        (r#"{"kind":"farm","name":"secdefnj","state":"ok"}"#, 2158, "Sec-def data farm connection is OK:secdefnj"),
    ];
    for (body, code, text) in cases {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let answer = control.call("POST", "/faults", Some(&body)).await.unwrap();
        assert_eq!(answer, r#"{"injected":"farm"}"#);
        assert_eq!(notice(&a.read_until(WITHIN, is_notice).await), pair(code, text));
    }

    // Mistakes are the caller's: 400 with a reason, nothing sent, nothing counted.
    let unknown = serde_json::json!({"kind": "farm", "name": "jfarm", "state": "broken"});
    let err = control.call("POST", "/faults", Some(&unknown)).await;
    let Err(ib_sim::control_client::ControlError::Status { status: 400, body }) = err else { panic!("{err:?}") };
    let reason: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reason = reason["error"].as_str().unwrap_or_default();
    assert!(reason.starts_with(r#"no farm named "jfarm"; the farms are usfarm, eufarm"#), "{reason}");
    let inactive_secdef = serde_json::json!({"kind": "farm", "name": "secdefnj", "state": "inactive"});
    let err = control.call("POST", "/faults", Some(&inactive_secdef)).await;
    assert!(matches!(err, Err(ib_sim::control_client::ControlError::Status { status: 400, .. })), "{err:?}");
    let bad_state = serde_json::json!({"kind": "farm", "name": "usfarm", "state": "down"});
    let err = control.call("POST", "/faults", Some(&bad_state)).await;
    assert!(matches!(err, Err(ib_sim::control_client::ControlError::Status { status: 422, .. })), "{err:?}");
    assert_eq!(sim.stats().faults.get("farm"), Some(&8));
    a.request(&Request::CurrentTime).await;
    let next = a.read_until(WITHIN, |_| true).await;
    assert!(matches!(next, Reply::CurrentTime(_)), "no notice went out for the refused changes: {next:?}");

    // Reset restores the scenario's farms and tells the clients about the ones that differ.
    sim.reset();
    let mut restored = Vec::new();
    for _ in 0..3 {
        restored.push(notice(&a.read_until(WITHIN, is_farm_notice).await));
    }
    restored.sort();
    assert_eq!(
        restored,
        [
            pair(2104, "Market data farm connection is OK:eufarm"),
            pair(2106, "HMDS data farm connection is OK:ushmds"),
            pair(2107, "HMDS data farm connection is inactive but should be available upon demand.:euhmds"),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_link_outage_breaks_the_ok_farms_and_restores_only_those() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Farm { name: "usopt".into(), state: FarmState::Broken }).unwrap();
    c.read_until(WITHIN, is_error(2103)).await;

    sim.inject(Fault::LinkLost { restore_ms: 300, data_lost: false }).unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|(code, _)| *code == LINK_RESTORED_DATA_MAINTAINED.0) {
        seen.push(notice(&c.read_until(WITHIN, is_notice).await));
    }
    while seen.len() < 10 {
        seen.push(notice(&c.read_until(WITHIN, is_notice).await));
    }
    let codes: Vec<i32> = seen.iter().map(|(code, _)| *code).collect();
    let (lost, maintained) = (LINK_LOST.0, LINK_RESTORED_DATA_MAINTAINED.0);
    assert_eq!(codes, [lost, 2103, 2103, 2105, 2157, maintained, 2104, 2104, 2106, SECDEF_FARM_OK]);
    let names: Vec<&str> = seen.iter().map(|(_, t)| t.rsplit(':').next().unwrap_or_default()).collect();
    // Inactive farms (cashfarm, euhmds) and the already broken usopt are left alone.
    assert_eq!(names[1..5], ["usfarm", "eufarm", "ushmds", "secdefnj"]);
    assert_eq!(names[6..], ["usfarm", "eufarm", "ushmds", "secdefnj"]);

    // A client connecting during an outage sees the broken farms, then 1100.
    sim.inject(Fault::Maintenance { duration_ms: 60_000 }).unwrap();
    let (_late, notices) = start(sim.api_addr(), 2, 8).await;
    let codes: Vec<i32> = notices.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, [2103, 2103, 2108, 2103, 2105, 2107, 2157, LINK_LOST.0]);
    sim.shutdown().await;
}

#[tokio::test]
async fn scenario_farms_and_scheduled_farm_faults() {
    let farms = vec![
        ib_sim::Farm { name: "usfarm.nj".into(), kind: FarmKind::Market, state: FarmState::Ok },
        ib_sim::Farm { name: "secdefil".into(), kind: FarmKind::Secdef, state: FarmState::Broken },
    ];
    let mut scenario = Scenario { farms, ..Scenario::default() };
    let sim = start_sim_with(scenario.clone()).await;
    let (_c, notices) = start(sim.api_addr(), 1, 2).await;
    assert_eq!(
        notices,
        [
            pair(2104, "Market data farm connection is OK:usfarm.nj"),
            pair(2157, "Sec-def data farm connection is broken:secdefil"),
        ]
    );
    sim.shutdown().await;

    scenario.schedule.push(ib_sim::ScheduledFault {
        at_ms: 1,
        every_ms: None,
        count: None,
        fault: Fault::Farm { name: "secdefil".into(), state: FarmState::Ok },
    });
    let sim = start_sim_with(scenario).await;
    eventually("the scheduled farm fault", WITHIN, || async {
        (sim.stats().faults.get("farm") == Some(&1)).then_some(())
    })
    .await;
    let (_c, notices) = start(sim.api_addr(), 1, 2).await;
    assert_eq!(notices[1], pair(2158, "Sec-def data farm connection is OK:secdefil"));
    sim.shutdown().await;
}
