//! The whole stack in-process: simulator + gateway-svc on ephemeral loopback ports, with timings
//! shortened so faults resolve in milliseconds, and a gRPC client.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_proto::pb;
use gateway_proto::pb::gateway_service_client::GatewayServiceClient;
use gateway_svc::Settings;
use ib_sim::Scenario;
use ibgw_demo::{Demo, DemoAddrs};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub type Client = GatewayServiceClient<Channel>;

pub struct Stack {
    pub demo: Demo,
    pub client: Client,
}

/// Settings for tests: ephemeral ports, fast retries, a probe as eager as IB allows.
pub fn fast_settings() -> Settings {
    let mut s = Settings::default();
    s.grpc.listen = "127.0.0.1:0".into();
    s.ops.listen = "127.0.0.1:0".into();
    s.upstream.backoff_initial_ms = 50;
    s.upstream.backoff_max_ms = 400;
    s.upstream.connect_timeout_ms = 1_000;
    s.upstream.sync_timeout_ms = 3_000;
    s.upstream.probe_idle_ms = 1_100;
    s.upstream.probe_timeout_ms = 700;
    s.shutdown.grace_ms = 4_000;
    s
}

/// `s` with the TWS front door on an ephemeral loopback port.
pub fn with_front_door(mut s: Settings) -> Settings {
    s.tws_api.enabled = true;
    s.tws_api.listen = "127.0.0.1:0".into();
    s
}

pub async fn start_stack() -> Stack {
    start_stack_with(fast_settings(), Scenario::default()).await
}

pub async fn start_stack_with(settings: Settings, scenario: Scenario) -> Stack {
    let stack = start_stack_unready(settings, scenario).await;
    stack.wait_ready().await;
    stack
}

/// The stack without waiting for the session: for tests of sessions that never become ready.
pub async fn start_stack_unready(settings: Settings, scenario: Scenario) -> Stack {
    super::init_tracing();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let demo = Demo::start(
        settings.validate().expect("valid test settings"),
        DemoAddrs { sim_api: any, sim_control: any },
        scenario,
        CancellationToken::new(),
    )
    .await
    .expect("demo starts");
    let client = connect(demo.service.grpc_addr).await;
    Stack { demo, client }
}

pub async fn connect(addr: SocketAddr) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    GatewayServiceClient::new(channel)
}

impl Stack {
    pub fn sim(&self) -> &ib_sim::Sim {
        &self.demo.sim
    }

    pub async fn health(&self) -> pb::Health {
        self.client.clone().get_health(pb::GetHealthRequest {}).await.unwrap().into_inner().health.unwrap()
    }

    pub async fn wait_state(&self, state: pb::SessionState, within: Duration) -> pb::Health {
        let what = format!("session state {state:?}");
        super::eventually(&what, within, || async {
            let h = self.health().await;
            (h.state == state as i32).then_some(h)
        })
        .await
    }

    pub async fn wait_ready(&self) -> pb::Health {
        self.wait_state(pb::SessionState::Ready, Duration::from_secs(10)).await
    }

    /// Stops the stack and checks the invariants every test must keep: the gateway never got an
    /// order-class message, never saw two of our sockets at once, and saw ours close first, cleanly.
    pub async fn stop_and_check(self) -> ib_sim::Stats {
        let stats_before = self.sim().stats();
        assert!(stats_before.peak_concurrent <= 1, "more than one upstream socket at once: {stats_before:?}");
        let Stack { demo, client } = self;
        drop(client);
        let service_clean = demo.service.stop().await;
        assert!(service_clean, "service stopped within its grace");
        let stats = super::eventually("the upstream socket to close", Duration::from_secs(5), || async {
            let s = demo.sim.stats();
            (s.open_now == 0).then_some(s)
        })
        .await;
        let port = demo.sim.api_addr().port();
        demo.sim.shutdown().await;
        assert_eq!(stats.order_messages, 0, "read-only by construction");
        let unclean: Vec<_> = stats.closed.iter().filter(|c| !c.clean).collect();
        assert!(unclean.is_empty(), "every upstream connection closed cleanly: {unclean:?}");
        assert_eq!(close_wait(port), "", "no half-closed sockets on the gateway port");
        let last = stats.closed.back().expect("a closed connection");
        assert_eq!(last.closed_by, ib_sim::Closer::Client, "our side closed first: {last:?}");
        assert!(last.clean, "and cleanly: {last:?}");
        stats
    }
}

/// Sockets in CLOSE_WAIT on either side of `port`, as `ss` lists them (empty when none).
pub fn close_wait(port: u16) -> String {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    let out = std::process::Command::new("ss")
        .args(["-Htan", "state", "close-wait", &filter])
        .output()
        .expect("ss (iproute2) is installed by the test command");
    assert!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
