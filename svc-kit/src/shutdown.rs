//! Stopping within a grace: wait for a service's tasks, but never longer than the grace, and say
//! whether they all finished (a clean stop) or the grace ran out.

use std::future::Future;
use std::time::Duration;

use tokio_util::task::TaskTracker;

/// Closes `tracker` and waits at most `grace` for its tasks. True when every task finished.
pub async fn tracker_within(tracker: &TaskTracker, grace: Duration) -> bool {
    tracker.close();
    within(grace, tracker.wait()).await
}

/// Waits at most `grace` for `work` (a set of tasks joined, a server's drain). True when it
/// finished in time.
pub async fn within<F: Future>(grace: Duration, work: F) -> bool {
    tokio::time::timeout(grace, work).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn clean_when_the_tasks_finish_in_time() {
        let tracker = TaskTracker::new();
        tracker.spawn(tokio::time::sleep(Duration::from_secs(1)));
        assert!(tracker_within(&tracker, Duration::from_secs(5)).await);
        assert!(tracker.is_closed() && tracker.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn not_clean_when_the_grace_runs_out() {
        let tracker = TaskTracker::new();
        tracker.spawn(std::future::pending::<()>());
        let started = tokio::time::Instant::now();
        assert!(!tracker_within(&tracker, Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5), "gave up at the grace, not before or after");
        let joined = async {
            let a = tokio::spawn(async {});
            let b = tokio::spawn(std::future::pending::<()>());
            let _ = (a.await, b.await);
        };
        assert!(!within(Duration::from_secs(1), joined).await);
    }
}
