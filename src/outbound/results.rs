//! The result writer: one task per node that commits attempt results in
//! batches. Senders hand over a result and wait until it is committed, so a
//! delivery's claim is only released once its outcome is durable; whatever
//! queued up while the previous batch committed goes in the next statement,
//! which turns many small commits into few under load. A result Postgres
//! refuses fails alone, not its batch (see `attempts::record_batch`).

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{
    attempts::{self, AttemptResult, Committed},
    Error, Result,
};

/// Results waiting for the writer; a full queue makes senders wait.
const QUEUE: usize = 4096;
/// The most results one statement writes.
const BATCH: usize = 512;

/// A result and the sender waiting for its commit.
struct Queued {
    result: AttemptResult,
    committed: oneshot::Sender<Committed>,
}

/// The handle senders record through; the writer task stops when it is dropped.
pub(super) struct ResultWriter {
    queue: mpsc::Sender<Queued>,
}

impl ResultWriter {
    pub fn spawn(pool: PgPool) -> Self {
        let (queue, queued) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, queued));
        Self { queue }
    }

    /// Returns once the result is committed.
    pub async fn record(&self, result: AttemptResult) -> Result<()> {
        let (committed, done) = oneshot::channel();
        self.queue.send(Queued { result, committed }).await.map_err(|_| Error::ResultWriterStopped)?;
        done.await.map_err(|_| Error::ResultWriterStopped)?.map_err(Error::ResultBatch)
    }
}

async fn write_batches(pool: PgPool, mut queued: mpsc::Receiver<Queued>) {
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queued.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let (results, waiting): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.result, q.committed)).unzip();
        let outcomes = attempts::record_batch(&pool, &results).await;
        for (committed, outcome) in waiting.into_iter().zip(outcomes) {
            // A sender that gave up waiting has nothing left to tell.
            let _ = committed.send(outcome);
        }
    }
}
