//! The delivery worker loop: claims due deliveries (see `claims`) up to the
//! free send slots, and runs each claim (see `attempt`) on its own task with
//! no transaction open while sending. Idle, it waits for the fan-out
//! trigger's NOTIFY, or a short poll that backs it up when the listener is
//! down. On stop it claims nothing more and waits for sends in flight.

use std::{sync::Arc, time::Duration};

use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::{watch, Semaphore};

use super::{claims, deliveries::NOTIFY_CHANNEL, results::ResultWriter, send::Sender, OutboundSettings};

/// How long an idle worker waits when no NOTIFY comes.
const POLL: Duration = Duration::from_millis(500);

pub struct Worker {
    pub(super) pool: PgPool,
    pub(super) sender: Sender,
    pub(super) settings: OutboundSettings,
    pub(super) results: ResultWriter,
    sealer: crate::sealing::Sealer,
}

impl Worker {
    pub fn new(pool: PgPool, settings: OutboundSettings, sealer: crate::sealing::Sealer) -> Self {
        Self {
            sealer,
            sender: Sender::new(&settings),
            results: ResultWriter::spawn(pool.clone()),
            pool,
            settings,
        }
    }

    /// Runs until `stop` resolves; in-flight sends finish first.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut listener = PgListener::connect_with(&self.pool).await.ok();
        if let Some(l) = listener.as_mut() {
            let _ = l.listen(NOTIFY_CHANNEL).await;
        }
        while !*stop.borrow() {
            let free = slots.available_permits().max(1) as i64;
            let claimed = match claims::claim_due(&self.pool, &self.sealer, free, self.settings.lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error.message = %e, "claiming deliveries failed");
                    Vec::new()
                }
            };
            let idle = claimed.is_empty();
            for c in claimed {
                let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.deliver(&c).await {
                        tracing::warn!(delivery.id = %c.id, error.message = %e, "delivery bookkeeping failed; the lease will expire and it will be retried");
                    }
                    drop(permit);
                });
            }
            if idle {
                let notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()).map_err(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let _ = slots.acquire_many(self.settings.concurrency.max(1) as u32).await;
    }
}
