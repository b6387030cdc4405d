//! End-to-end tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, missing_debug_implementations)]

mod support;

mod cli_errors;
mod data_truth;
mod front_door;
mod front_door_wire;
mod gateway_bad_input;
mod gateway_config;
mod gateway_faults;
mod gateway_rpc;
mod gateway_streams;
mod gateway_tls;
mod metrics;
mod pnl;
mod session_actor;
mod sim_faults;
mod sim_interop;
mod trader_client;
