//! The tokio runtime the service runs on.
//!
//! Multi-threaded, with the worker's LIFO slot turned off. Normally a task woken by the running
//! task runs next, in that slot. For a fan-out that is the worst order: each stream's message
//! wakes its HTTP/2 connection task, which then writes that one frame (one syscall) before the
//! next stream runs. Without the slot the connection task queues behind the other streams and
//! writes all their frames at once. Measured in docs/BENCHMARKS.md (F7).
//!
//! `Builder::disable_lifo_slot` is behind `--cfg tokio_unstable`, set for the workspace in
//! `.cargo/config.toml`. A build without it still works, with the slower fan-out; the test
//! below fails so that such a build is noticed.

use tokio::runtime::Builder;

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
