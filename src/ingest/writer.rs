//! The batched durable writer.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::{
    events::{self, NewEvent},
    EntryFlow, StoredEvent,
};
use crate::engine::Engine;

/// Rows one transaction takes at most.
const MAX_BATCH_ROWS: usize = 512;
/// A commit that takes longer is abandoned and the webhooks answered 503.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, Clone)]
pub enum IngestError {
    #[error("the database could not store the event: {0}")]
    Unavailable(String),
}

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<bool>, IngestError>>,
}

/// Handle to the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct IngestWriter {
    jobs: mpsc::Sender<Job>,
}

impl IngestWriter {
    /// Starts `writers` tasks committing batches on `engine`'s pool; `entry`
    /// starts the run of every new event in the same commit.
    pub fn spawn(engine: Engine, entry: Arc<dyn EntryFlow>, writers: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(8192);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers.max(1) {
            let (engine, entry, queue) = (engine.clone(), entry.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut queue = queue.lock().await;
                        let Some(first) = queue.recv().await else { return };
                        let mut rows = first.events.len();
                        let mut batch = vec![first];
                        while rows < MAX_BATCH_ROWS {
                            match queue.try_recv() {
                                Ok(job) => {
                                    rows += job.events.len();
                                    batch.push(job);
                                }
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    commit_batch(&engine, entry.as_ref(), batch).await;
                }
            });
        }
        Self { jobs }
    }

    /// Stores `events` durably (with their runs); for each, whether it was new
    /// (`false` = duplicate). Returns only after the commit.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<bool>, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| IngestError::Unavailable("ingest is shutting down".into()))?;
        answer
            .await
            .map_err(|_| IngestError::Unavailable("the writer stopped".into()))?
    }
}

async fn commit_batch(engine: &Engine, entry: &dyn EntryFlow, batch: Vec<Job>) {
    let events: Vec<&NewEvent> = batch.iter().flat_map(|j| j.events.iter()).collect();
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let result = tokio::time::timeout(COMMIT_TIMEOUT, store(engine, entry, &events, &ids)).await;
    let outcome = match result {
        Ok(Ok(inserted)) => Ok(inserted),
        Ok(Err(e)) => Err(IngestError::Unavailable(e.to_string())),
        Err(_) => Err(IngestError::Unavailable("commit timed out".into())),
    };
    let mut offset = 0;
    for job in batch {
        let n = job.events.len();
        let answer = outcome
            .as_ref()
            .map(|inserted| ids[offset..offset + n].iter().map(|id| inserted.contains(id)).collect())
            .map_err(Clone::clone);
        offset += n;
        let _ = job.reply.send(answer);
    }
}

/// One transaction: the new events, the run each starts, their wake-ups.
async fn store(
    engine: &Engine,
    entry: &dyn EntryFlow,
    events: &[&NewEvent],
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, crate::engine::Error> {
    let mut tx = engine.pool().begin().await?;
    // Durable before the answer: every pool connection runs with
    // synchronous_commit=on (see `db::pool`).
    let run_ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let inserted: HashSet<Uuid> = events::insert_new_using(&mut tx, events, ids, &run_ids)
        .await?
        .into_iter()
        .collect();
    let stored: Vec<StoredEvent> = events
        .iter()
        .zip(ids)
        .zip(&run_ids)
        .filter(|((_, id), _)| inserted.contains(id))
        .map(|((event, id), run_id)| StoredEvent {
            event_id: *id,
            run_id: *run_id,
            provider: event.provider,
            kind: event.kind.clone(),
        })
        .collect();
    entry.start_using(engine, &mut tx, &stored).await?;
    tx.commit().await?;
    Ok(inserted)
}
