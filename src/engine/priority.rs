//! Webhook acknowledgements before run execution.
//!
//! A provider that waits too long for its 2xx times out and retries; a run that
//! starts a little later loses nothing. Both share this node's cores and its
//! database, so while webhooks pile up (at least `pressure` being stored at
//! once, see `Engine::foreground`), a run attempt may only start when one of a
//! few execution slots is free; attempts already running go on, and once the
//! pile falls below `pressure` every waiting attempt starts at once. A trickle
//! of webhooks (fewer in flight) never holds execution back. Measured with
//! `just bench-ingest`: with the full node executing at its normal
//! concurrency, acks waited behind runs (ack p99 61–63 ms against 16 ms for an
//! API-only node in the same runs).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The gate shared by the ingest path and the executor.
pub(crate) struct Priority {
    /// Webhook stores in flight.
    foreground: AtomicUsize,
    /// From this many webhook stores in flight, attempts need a slot.
    pressure: usize,
    /// Notified when `foreground` falls below `pressure`.
    idle: Notify,
    /// Attempts allowed to start while webhooks are in flight.
    slots: Arc<Semaphore>,
}

/// Held while a webhook is being stored; see `Engine::foreground`.
pub struct Foreground {
    priority: Arc<Priority>,
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.priority.foreground.fetch_sub(1, Ordering::AcqRel) == self.priority.pressure {
            self.priority.idle.notify_waiters();
        }
    }
}

impl Priority {
    /// `slots`: how many attempts may start at once while at least `pressure`
    /// webhooks are being stored.
    pub(crate) fn new(slots: usize, pressure: usize) -> Arc<Self> {
        Arc::new(Self {
            foreground: AtomicUsize::new(0),
            pressure: pressure.max(1),
            idle: Notify::new(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
        })
    }

    pub(crate) fn foreground(self: &Arc<Self>) -> Foreground {
        self.foreground.fetch_add(1, Ordering::AcqRel);
        Foreground { priority: self.clone() }
    }

    /// Waits until an attempt may start: at once below the pressure (no slot
    /// taken), otherwise for a slot, held until the returned permit drops.
    pub(crate) async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        // Every attempt passes here: without pressure, one atomic load and no
        // waiter registration.
        if self.foreground.load(Ordering::Acquire) < self.pressure {
            return None;
        }
        loop {
            // Registered before the check, so a webhook finishing in between
            // still wakes this waiter.
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.foreground.load(Ordering::Acquire) < self.pressure {
                return None;
            }
            tokio::select! {
                permit = self.slots.clone().acquire_owned() => {
                    return Some(permit.expect("the execution slots are never closed"));
                }
                _ = idle => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn admitted_within(priority: &Arc<Priority>, wait: Duration) -> Option<Option<OwnedSemaphorePermit>> {
        tokio::time::timeout(wait, priority.admit()).await.ok()
    }

    #[tokio::test]
    async fn below_the_pressure_every_attempt_starts_without_a_slot() {
        let priority = Priority::new(1, 2);
        let first = admitted_within(&priority, Duration::from_secs(1)).await.expect("admitted");
        let _one_webhook = priority.foreground();
        let second = admitted_within(&priority, Duration::from_secs(1)).await.expect("admitted");
        let third = admitted_within(&priority, Duration::from_secs(1)).await.expect("admitted");
        assert!(
            first.is_none() && second.is_none() && third.is_none(),
            "no slot is taken with fewer webhooks in flight than the pressure"
        );
    }

    #[tokio::test]
    async fn under_pressure_only_the_slots_start() {
        let priority = Priority::new(2, 1);
        let webhook = priority.foreground();
        let one = admitted_within(&priority, Duration::from_secs(1)).await.expect("a free slot");
        let two = admitted_within(&priority, Duration::from_secs(1)).await.expect("a free slot");
        assert!(one.is_some() && two.is_some());
        assert!(
            admitted_within(&priority, Duration::from_millis(100)).await.is_none(),
            "a third attempt must wait while both slots are held"
        );
        drop(one);
        assert!(
            admitted_within(&priority, Duration::from_secs(1)).await.expect("the freed slot").is_some(),
            "a freed slot lets the next attempt start"
        );
        drop(webhook);
    }

    #[tokio::test]
    async fn waiting_attempts_start_as_soon_as_the_pile_falls_below_the_pressure() {
        let priority = Priority::new(1, 2);
        let first = priority.foreground();
        let second = priority.foreground();
        let third = priority.foreground();
        let _slot = priority.admit().await.expect("the one slot");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let priority = priority.clone();
                tokio::spawn(async move { priority.admit().await.is_none() })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "two webhooks are still in flight");
        drop(second);
        for waiter in waiters {
            let started = tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("started").unwrap();
            assert!(started, "started without a slot once fewer webhooks than the pressure were in flight");
        }
        drop(third);
    }
}
