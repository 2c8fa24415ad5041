//! The durable-workflow engine.
//!
//! A run's truth lives in `engine.runs` / `engine.run_steps` / `engine.run_attempts`;
//! apalis-postgres only carries wake-ups (`{run_id, wake}`) and runs the workers.
//! The engine adds what apalis 1.0 lacks (see `apalis-notes.md`): a lease and a
//! fence per run (no duplicate execution after orphan re-enqueue, a wedged worker
//! or a late ack), its own retry/backoff (never `RetryAfterError`), per-key
//! ordering, durable timers and the ops writes (retry, rerun, cancel).

mod batch;
mod ctx;
mod error;
mod executor;
mod priority;
pub mod ops;
pub mod retention;
mod retry;
mod status;
pub mod store;
mod sweep;
mod wake;
mod worker;
mod workflow;

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use ctx::{RunCtx, StepInfo};
pub use error::{Error, Interrupt, Result, StepError};
pub use priority::Foreground;
pub use retry::RetryPolicy;
pub use store::{RunStatus, WakeJob};
pub use worker::Workers;
pub use workflow::{queue_name, Registry, Workflow};

use crate::config::EngineSettings;

/// The most writes one grouped statement carries.
const BATCH_MAX: usize = 64;
/// While at least `INGEST_PRESSURE` webhooks are being stored at once, run
/// attempts start in at most `concurrency / FOREGROUND_SHARE` slots (see `foreground`).
const FOREGROUND_SHARE: usize = 4;
const INGEST_PRESSURE: usize = 4;

/// Handle to the engine: cheap to clone, shared by HTTP handlers and workers.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    registry: Registry,
    settings: EngineSettings,
    /// Wakes this node's workers (see `wake.rs`).
    wake: wake::WakeSignals,
    /// `host-pid`: lease owner and attempt worker name of this process.
    node: String,
    /// Group commit of claims, unkeyed successes and plain steps' checkpoints
    /// (started on first use).
    claims: OnceLock<batch::Batcher<WakeJob, store::FastClaim>>,
    successes: OnceLock<batch::Batcher<store::Success, bool>>,
    checkpoints: OnceLock<batch::Batcher<store::Checkpoint, bool>>,
    /// Webhook acknowledgements before run execution (see `priority.rs`).
    priority: Arc<priority::Priority>,
}

impl Engine {
    pub fn new(pool: PgPool, registry: Registry, settings: EngineSettings) -> Self {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "relevo".into());
        let node = format!("{host}-{}-{}", std::process::id(), &Uuid::now_v7().simple().to_string()[24..]);
        let wake = wake::WakeSignals::new(registry.names().map(queue_name));
        let priority = priority::Priority::new(settings.concurrency / FOREGROUND_SHARE, INGEST_PRESSURE);
        Self {
            inner: Arc::new(Inner {
                pool,
                registry,
                settings,
                wake,
                node,
                claims: OnceLock::new(),
                successes: OnceLock::new(),
                checkpoints: OnceLock::new(),
                priority,
            }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Held while a webhook is being stored: while four or more are held at
    /// once, at most a quarter of the worker concurrency of run attempts (at
    /// least one) may start on this node, so acknowledgements do not wait
    /// behind execution. Attempts already running go on.
    pub fn foreground(&self) -> Foreground {
        self.inner.priority.foreground()
    }

    /// Waits until a run attempt may start (see `foreground`).
    pub(crate) async fn admit_attempt(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.priority.admit().await
    }

    pub(crate) fn wake_signals(&self) -> &wake::WakeSignals {
        &self.inner.wake
    }

    /// Claims wake-ups in batches (`engine.claim_runs`).
    pub(crate) fn claims(&self) -> &batch::Batcher<WakeJob, store::FastClaim> {
        self.inner.claims.get_or_init(|| {
            let (pool, owner, lease) = (self.pool().clone(), self.node().to_owned(), self.settings().lease);
            batch::Batcher::spawn(BATCH_MAX, move |jobs| {
                let (pool, owner) = (pool.clone(), owner.clone());
                Box::pin(async move { store::claim_batch(&pool, jobs, &owner, lease).await })
            })
        })
    }

    /// Ends unkeyed successful runs in batches.
    pub(crate) fn successes(&self) -> &batch::Batcher<store::Success, bool> {
        self.inner.successes.get_or_init(|| {
            let pool = self.pool().clone();
            batch::Batcher::spawn(BATCH_MAX, move |runs| {
                let pool = pool.clone();
                Box::pin(async move { store::succeed_batch(&pool, runs).await })
            })
        })
    }

    /// Checkpoints completed plain steps in batches.
    pub(crate) fn checkpoints(&self) -> &batch::Batcher<store::Checkpoint, bool> {
        self.inner.checkpoints.get_or_init(|| {
            let pool = self.pool().clone();
            batch::Batcher::spawn(BATCH_MAX, move |steps| {
                let pool = pool.clone();
                Box::pin(async move { store::checkpoint_batch(&pool, steps).await })
            })
        })
    }

    /// Starts a run of `W` inside the caller's transaction: the run row and its
    /// wake-up commit with whatever else the caller writes (e.g. the webhook).
    pub async fn start_using<W: Workflow>(
        &self,
        conn: &mut PgConnection,
        input: &W::Input,
        trigger_event_id: Option<Uuid>,
    ) -> Result<Uuid> {
        start_using::<W>(conn, input, trigger_event_id).await
    }

    /// Starts one run of `W` per entry in the caller's transaction. The caller
    /// chooses the run ids (`Uuid::now_v7()`), so rows it writes in the same
    /// transaction can point at them. Unkeyed runs take a bulk path (two
    /// statements for the whole batch); runs of one key are created in the
    /// order given, keys taken in sorted order so that concurrent callers lock
    /// them in the same order and cannot deadlock.
    pub async fn start_many_using<W: Workflow>(&self, conn: &mut PgConnection, runs: &[NewRun<W::Input>]) -> Result<()> {
        let mut keyed = Vec::new();
        let mut rows = Vec::with_capacity(runs.len());
        for run in runs {
            match W::ordering_key(&run.input) {
                Some(key) => keyed.push((key, run)),
                None => rows.push((run.id, input_value::<W>(&run.input)?, run.trigger_event_id)),
            }
        }
        store::insert_unkeyed_runs_using(conn, W::NAME, W::VERSION, &rows).await?;
        // Stable: runs of one key keep the order given.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, run) in keyed {
            insert_using::<W>(conn, run).await?;
        }
        Ok(())
    }

    /// Starts a run of a workflow given by name with a JSON input (ops API).
    pub async fn start_by_name_using(
        &self,
        conn: &mut PgConnection,
        workflow: &str,
        input: &Value,
        trigger_event_id: Option<Uuid>,
    ) -> Result<Uuid> {
        let flow = self
            .registry()
            .get(workflow)
            .ok_or_else(|| Error::UnknownWorkflow(workflow.into()))?;
        let key = flow.ordering_key(input).map_err(|e| Error::BadInput {
            workflow: workflow.into(),
            reason: e.to_string(),
        })?;
        let id = Uuid::now_v7();
        store::insert_run_using(conn, id, flow.name(), flow.version(), key.as_deref(), input, trigger_event_id)
            .await?;
        Ok(id)
    }

    /// Starts a run in its own transaction.
    pub async fn start<W: Workflow>(&self, input: &W::Input) -> Result<Uuid>
    where
        W::Input: Serialize,
    {
        let mut tx = self.pool().begin().await?;
        let id = self.start_using::<W>(&mut tx, input, None).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// A run to start, with the id its caller chose.
#[derive(Clone, Debug)]
pub struct NewRun<I> {
    pub id: Uuid,
    pub input: I,
    /// The inbound event that caused it, shown to ops.
    pub trigger_event_id: Option<Uuid>,
}

/// Starts a run of `W` inside the caller's transaction (also usable from a
/// workflow's `tx_step`, so a child run starts exactly once; `?` turns the
/// error into the right `StepError`).
pub async fn start_using<W: Workflow>(
    conn: &mut PgConnection,
    input: &W::Input,
    trigger_event_id: Option<Uuid>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    insert_using::<W>(conn, &NewRun { id, input, trigger_event_id }).await?;
    Ok(id)
}

async fn insert_using<W: Workflow>(conn: &mut PgConnection, run: &NewRun<impl std::borrow::Borrow<W::Input>>) -> Result<()> {
    let input = run.input.borrow();
    let key = W::ordering_key(input);
    let value = input_value::<W>(input)?;
    store::insert_run_using(conn, run.id, W::NAME, W::VERSION, key.as_deref(), &value, run.trigger_event_id).await
}

fn input_value<W: Workflow>(input: &W::Input) -> Result<Value> {
    serde_json::to_value(input).map_err(|e| Error::BadInput {
        workflow: W::NAME.into(),
        reason: e.to_string(),
    })
}

/// On shutdown: hands runs this node still holds (their attempt did not end in
/// time) back to the queue at once, instead of waiting for their lease to expire.
/// Their open attempts are closed as `released`, so they do not count as crashes.
pub async fn release_node_runs(engine: &Engine) -> Result<u64> {
    let mut tx = engine.pool().begin().await?;
    let released = store::release_node_runs_using(&mut tx, engine.node()).await?;
    tx.commit().await?;
    Ok(released)
}
