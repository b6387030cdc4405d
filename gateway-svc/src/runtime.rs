//! The tokio runtime the service runs on.
//!
//! Multi-threaded, with the worker's LIFO slot turned off. Normally a task woken by the running
//! task runs next, in that slot. For a fan-out that is the worst order: each stream's message
//! wakes its HTTP/2 connection task, which then writes that one frame (one syscall) before the
//! next stream runs. Without the slot the connection task queues behind the other streams and
//! writes all their frames at once. Measured in docs/BENCHMARKS.md (F7).
//!
//! `Builder::disable_lifo_slot` is behind `--cfg tokio_unstable`, set for the workspace in
//! `.cargo/config.toml`. A `RUSTFLAGS` (or `CARGO_ENCODED_RUSTFLAGS`, or a `target.<triple>.rustflags`
//! setting) replaces that list instead of adding to it, so such builds must repeat the flag. A
//! build without it still works, with the slower fan-out, and never silently: the service logs a
//! warning at start-up ([`UNTUNED_LOST`], [`UNTUNED_FIX`]), `ibgw_runtime_tuned` is 0, and the
//! tests below fail.

use tokio::runtime::Builder;

/// Whether this build turns the LIFO slot off (built with `--cfg tokio_unstable`). Exported as
/// the `ibgw_runtime_tuned` gauge.
pub(crate) const TUNED: bool = cfg!(tokio_unstable);

/// What a build without `--cfg tokio_unstable` loses: the `lost` field of its start-up warning
/// ("built without --cfg tokio_unstable", logged by [`crate::server::start`]).
pub(crate) const UNTUNED_LOST: &str = "tokio's LIFO slot stays on, so every stream message costs its HTTP/2 connection a \
     write of its own instead of one batch per change: about twice the CPU per change with 10,000 streams \
     (docs/BENCHMARKS.md, F7)";

/// How to get the tuning back: the `fix` field of that warning.
pub(crate) const UNTUNED_FIX: &str = "rebuild from the repository root, whose .cargo/config.toml sets the flag; if RUSTFLAGS \
     is set, add --cfg tokio_unstable to it (RUSTFLAGS replaces config.toml's rustflags)";

/// The service's runtime builder; callers add sizing and build.
pub fn builder() -> Builder {
    let mut builder = Builder::new_multi_thread();
    builder.enable_all();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn this_build_is_tuned_and_says_so() {
        let rendered = crate::metrics::Metrics::new().render();
        let built_with = rendered.contains("ibgw_runtime_tuned 1");
        assert!(built_with, "built without --cfg tokio_unstable (a RUSTFLAGS without it?): {rendered}");
    }

    #[test]
    fn the_warning_says_what_is_lost_and_how_to_fix_it() {
        assert!(super::UNTUNED_LOST.contains("LIFO slot") && super::UNTUNED_LOST.contains("BENCHMARKS"));
        for needle in ["--cfg tokio_unstable", "RUSTFLAGS", ".cargo/config.toml"] {
            assert!(super::UNTUNED_FIX.contains(needle), "{needle:?} missing from {:?}", super::UNTUNED_FIX);
        }
        for text in [super::UNTUNED_LOST, super::UNTUNED_FIX] {
            assert!(!text.contains('\n') && !text.contains("  "), "one line: {text:?}");
        }
    }

    #[test]
    fn tasks_run_in_the_order_they_were_woken() {
        let runtime = super::builder().worker_threads(1).build().expect("a runtime");
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&order);
        runtime.block_on(async move {
            // Spawned from inside a worker, the way a stream wakes its connection task. With the
            // LIFO slot, the last one woken (b) would run first.
            let outer = tokio::spawn(async move {
                let record = |name: &'static str| {
                    let seen = Arc::clone(&seen);
                    async move { seen.lock().expect("not poisoned").push(name) }
                };
                let a = tokio::spawn(record("a"));
                let b = tokio::spawn(record("b"));
                let _ = (a.await, b.await);
            });
            outer.await.expect("the task ran");
        });
        assert_eq!(*order.lock().expect("not poisoned"), ["a", "b"], "built without --cfg tokio_unstable?");
    }
}
