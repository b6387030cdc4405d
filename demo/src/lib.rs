//! `ibgw-demo`: the embedded simulator plus the service, for people without an IBKR account and
//! for every test of the whole stack.
//!
//! A crate of its own, above both gateway-svc and ib-sim, so that the production binary
//! (`gateway-svc`) cannot link the simulator: "production has no simulator" is a property of the
//! dependency graph (`cargo tree -p gateway-svc -e normal` has no ib-sim), not of a feature flag
//! that workspace feature unification could switch on.

use std::net::SocketAddr;

use ib_sim::{Scenario, Sim, SimConfig};
use tokio_util::sync::CancellationToken;

use gateway_svc::Config;
use gateway_svc::{Running, StartError};

/// Where the demo listens.
#[derive(Debug, Clone)]
pub struct DemoAddrs {
    /// Simulated gateway API port.
    pub sim_api: SocketAddr,
    /// Simulator control API.
    pub sim_control: SocketAddr,
}

/// A running demo: simulator plus service.
#[derive(Debug)]
pub struct Demo {
    /// The simulator.
    pub sim: Sim,
    /// The service.
    pub service: Running,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator failed.
    #[error("simulator")]
    Sim(#[from] ib_sim::SimError),
    /// The service failed.
    #[error(transparent)]
    Service(#[from] StartError),
}

impl Demo {
    /// Starts the simulator, points the upstream address at it, and starts the service.
    pub async fn start(
        mut config: Config,
        addrs: DemoAddrs,
        scenario: Scenario,
        shutdown: CancellationToken,
    ) -> Result<Demo, DemoError> {
        let sim = Sim::start(SimConfig { api: addrs.sim_api, control: Some(addrs.sim_control), scenario }).await?;
        // A bound socket address: host:port by construction, as validation requires.
        config.upstream.address = sim.api_addr().to_string();
        match gateway_svc::start(config, shutdown).await {
            Ok(service) => Ok(Demo { sim, service }),
            Err(e) => {
                sim.shutdown().await;
                Err(e.into())
            }
        }
    }

    /// The addresses as the first stdout line prints them.
    pub fn addresses_json(&self) -> serde_json::Value {
        serde_json::json!({
            "grpc": self.service.grpc_addr.to_string(),
            "ops": self.service.ops_addr.to_string(),
            "tws_api": self.service.tws_api_addr.map(|a| a.to_string()),
            "sim_api": self.sim.api_addr().to_string(),
            "sim_control": self.sim.control_addr().map(|a| a.to_string()),
        })
    }

    /// Stops the service first (so the simulator sees our side close), then the simulator.
    pub async fn stop(self) -> bool {
        let clean = self.service.stop().await;
        self.sim.shutdown().await;
        clean
    }
}
