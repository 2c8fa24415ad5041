//! The batched durable writer.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

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
    /// Run attempts yield to webhooks being stored (`Engine::foreground`).
    engine: Engine,
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
        Self { jobs, engine }
    }

    /// Stores `events` durably (with their runs); for each, whether it was new
    /// (`false` = duplicate). Returns only after the commit.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<bool>, IngestError> {
        let _foreground = self.engine.foreground();
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
    match commit(engine, entry, &batch).await {
        // Validation makes every row storable; should Postgres still refuse one
        // request's data, the others must not share its fate: commit each alone.
        Err(e) if batch.len() > 1 && e.is_data_error() => {
            tracing::warn!(error.message = %e, requests = batch.len(), "a batch was refused; committing its requests one by one");
            for job in batch {
                let answer = commit(engine, entry, std::slice::from_ref(&job)).await;
                let _ = job.reply.send(answer.map(|mut each| each.remove(0)).map_err(Into::into));
            }
        }
        outcome => {
            let outcome = outcome.map_err(IngestError::from);
            let answers: Vec<_> = match outcome {
                Ok(each) => each.into_iter().map(Ok).collect(),
                Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
            };
            for (job, answer) in batch.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
    }
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error("commit timed out")]
    TimedOut,
}

impl CommitError {
    /// Postgres refused the data itself, not the connection.
    fn is_data_error(&self) -> bool {
        matches!(self, Self::Engine(crate::engine::Error::Database(e)) if crate::db::refuses_values(e))
    }
}

impl From<CommitError> for IngestError {
    fn from(e: CommitError) -> Self {
        IngestError::Unavailable(e.to_string())
    }
}

/// Commits the jobs' events in one transaction; for each job, whether each of
/// its events was new. An event whose identity came earlier in the same batch
/// is a duplicate, like a redelivery.
async fn commit(engine: &Engine, entry: &dyn EntryFlow, jobs: &[Job]) -> Result<Vec<Vec<bool>>, CommitError> {
    let events: Vec<&NewEvent> = jobs.iter().flat_map(|j| j.events.iter()).collect();
    // One row per identity, in identity order: concurrent batches that share
    // identities (a provider retrying a slow answer, Meta delivering to several
    // apps) then take their locks in the same order and cannot deadlock.
    let mut first: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        first.entry(event.identity()).or_insert(i);
    }
    let rows: Vec<&NewEvent> = first.values().map(|&i| events[i]).collect();
    let arrival: Vec<usize> = first.values().copied().collect();
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let inserted = tokio::time::timeout(COMMIT_TIMEOUT, store(engine, entry, &rows, &arrival, &ids))
        .await
        .map_err(|_| CommitError::TimedOut)??;
    let new_rows: HashSet<(&str, &str)> = rows
        .iter()
        .zip(&ids)
        .filter(|(_, id)| inserted.contains(id))
        .map(|(row, _)| row.identity())
        .collect();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut i = 0;
    for job in jobs {
        let mut each = Vec::with_capacity(job.events.len());
        for event in &job.events {
            let identity = event.identity();
            each.push(first[&identity] == i && new_rows.contains(&identity));
            i += 1;
        }
        answers.push(each);
    }
    Ok(answers)
}

/// One transaction: the new events, the run each starts, their wake-ups.
/// `events` come in identity order; `arrival[i]` is where `events[i]` came in
/// the batch, the order in which the entry flow gets them.
async fn store(
    engine: &Engine,
    entry: &dyn EntryFlow,
    events: &[&NewEvent],
    arrival: &[usize],
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, crate::engine::Error> {
    let mut tx = engine.pool().begin().await?;
    // Durable before the answer: every pool connection runs with
    // synchronous_commit=on (see `db::pool`).
    let run_ids: Vec<Option<Uuid>> = events.iter().map(|e| (!e.is_ignored()).then(Uuid::now_v7)).collect();
    let inserted: HashSet<Uuid> = events::insert_new_using(&mut tx, events, ids, &run_ids)
        .await?
        .into_iter()
        .collect();
    let mut stored: Vec<(usize, StoredEvent)> = events
        .iter()
        .zip(arrival)
        .zip(ids)
        .zip(&run_ids)
        .filter(|((_, id), _)| inserted.contains(id))
        .filter_map(|(((event, at), id), run_id)| Some((event, *at, id, (*run_id)?)))
        .map(|(event, at, id, run_id)| {
            let stored = StoredEvent {
                event_id: *id,
                run_id,
                provider: event.provider(),
                kind: event.kind().to_owned(),
                sequence_key: event.sequence_key().map(str::to_owned),
            };
            (at, stored)
        })
        .collect();
    stored.sort_by_key(|(at, _)| *at);
    let stored: Vec<StoredEvent> = stored.into_iter().map(|(_, event)| event).collect();
    entry.start_using(engine, &mut tx, &stored).await?;
    tx.commit().await?;
    Ok(inserted)
}
