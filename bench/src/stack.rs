//! The service under test: gateway-svc with its embedded simulator, either in this process (for
//! scenarios that spawn their own clients) or as a separate `ibgw-demo` process (for
//! scenarios that read its memory or must not share its runtime with the load generator).

use std::net::SocketAddr;
use std::time::Duration;

use gateway_proto::pb;
use gateway_proto::pb::gateway_service_client::GatewayServiceClient;
use gateway_svc::Settings;
use ib_sim::ControlClient;
use ibgw_demo::{Demo, DemoAddrs};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::binaries;
use crate::child::Service;
use crate::{Error, Result};

/// A gateway client over one HTTP/2 connection.
pub type Client = GatewayServiceClient<Channel>;

/// How long the session may take to become ready after start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// gateway-svc and the simulator in this process, on ephemeral loopback ports.
#[derive(Debug)]
pub struct InProcess {
    demo: Demo,
}

impl InProcess {
    /// Starts both and waits until the session is ready.
    pub async fn start() -> Result<InProcess> {
        let mut settings = Settings::default();
        settings.grpc.listen = any_port().to_string();
        settings.ops.listen = any_port().to_string();
        let addrs = DemoAddrs { sim_api: any_port(), sim_control: any_port() };
        let config = settings.validate().map_err(|e| Error::Setup(e.to_string()))?;
        let demo = Demo::start(config, addrs, ib_sim::Scenario::default(), CancellationToken::new())
            .await
            .map_err(|e| Error::setup("ibgw-demo (in-process)", ibgw_client::source_chain(&e)))?;
        let stack = InProcess { demo };
        wait_ready(&mut connect(stack.grpc()).await?, READY_TIMEOUT).await?;
        Ok(stack)
    }

    /// gRPC address of the service as shipped.
    pub fn grpc(&self) -> SocketAddr {
        self.demo.service.grpc_addr
    }

    /// Simulated gateway API address.
    pub fn sim_api(&self) -> SocketAddr {
        self.demo.sim.api_addr()
    }

    /// Stops the service, then the simulator.
    pub async fn stop(self) {
        let _ = self.demo.stop().await;
    }
}

/// `ibgw-demo` (gateway-svc against its embedded simulator) as a separate process, on ephemeral
/// loopback ports.
#[derive(Debug)]
pub struct Spawned {
    service: Service,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Simulated gateway API address.
    pub sim_api: SocketAddr,
    /// The TWS front door.
    pub tws_api: SocketAddr,
    /// The embedded simulator's control API.
    pub control: ControlClient,
}

impl Spawned {
    /// Starts it with `env` (`IBGW__…` settings) and waits until the session is ready. Logs are
    /// kept at `warn` so logging costs nothing measurable.
    pub async fn start(env: &[(&str, String)]) -> Result<Spawned> {
        Spawned::start_with(env, &[]).await
    }

    /// [`Spawned::start`] with more arguments for `ibgw-demo` (such as `--scenario FILE`).
    pub async fn start_with(env: &[(&str, String)], extra: &[&str]) -> Result<Spawned> {
        let any = any_port().to_string();
        let mut args = vec![
            "--grpc-listen",
            &any,
            "--ops-listen",
            &any,
            "--tws-api-listen",
            &any,
            "--sim-listen",
            &any,
            "--sim-control-listen",
            &any,
        ];
        args.extend_from_slice(extra);
        let binary = binaries::sibling("ibgw-demo")?;
        let mut all_env = vec![("IBGW__LOG__FILTER", "warn".to_owned()), ("RUST_LOG", "warn".to_owned())];
        all_env.extend(env.iter().cloned());
        let service = Service::spawn(&binary, &args, &all_env).await?;
        let grpc = service.addr("grpc")?;
        let sim_api = service.addr("sim_api")?;
        let tws_api = service.addr("tws_api")?;
        let control = ControlClient::new(service.addr("sim_control")?);
        wait_ready(&mut connect(grpc).await?, READY_TIMEOUT).await?;
        Ok(Spawned { service, grpc, sim_api, tws_api, control })
    }

    /// The process's resident memory in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.service.rss_kib()
    }

    /// Lines of the service's log (warnings and errors) that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.service.log_lines_with(needle)
    }

    /// The process's CPU time so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.service.cpu_time()
    }

    /// Kills the process.
    pub async fn stop(self) {
        self.service.stop().await;
    }
}

/// One new HTTP/2 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<Client> {
    Ok(GatewayServiceClient::new(channel(addr).await?))
}

/// One new HTTP/2 connection to `addr`, as a channel to share between clients.
pub async fn channel(addr: SocketAddr) -> Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::setup("endpoint", e))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Error::setup(&format!("cannot connect to {addr}"), ibgw_client::source_chain(&e)))
}

/// The service's health.
pub async fn health(client: &mut Client) -> Result<pb::Health> {
    let r = client.get_health(pb::GetHealthRequest {}).await.map_err(|s| Error::functional("GetHealth", s))?;
    r.into_inner().health.ok_or_else(|| Error::Functional("GetHealth without health".into()))
}

/// Polls health until the session is READY.
pub async fn wait_ready(client: &mut Client, within: Duration) -> Result<pb::Health> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let h = health(client).await?;
        if h.state == pb::SessionState::Ready as i32 {
            return Ok(h);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Functional(format!("session not READY within {within:?}: {}", h.reason)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls health until at most `n` streams are open (closed streams free their slot when the
/// server notices the reset, a moment after the client drops them).
pub async fn wait_subscribers_at_most(client: &mut Client, n: u64, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let h = health(client).await?;
        if h.subscribers <= n {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Functional(format!("{} streams still open after {within:?}", h.subscribers)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
