//! ibgw-bridge against a real `nats-server -js` and an in-process `ibgw_demo::Demo`: what it
//! publishes, and that every fault (gateway, gateway-svc, NATS and bridge restarts) ends with the
//! buckets equal to gateway-svc's state and a stream without gaps or duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, missing_debug_implementations)]

mod support;

mod faults;
mod flow;
mod measure;
