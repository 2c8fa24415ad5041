//! `RunCtx`: what a workflow's `run` uses to make steps durable.
//!
//! Each step's output is checkpointed under the run's fence before the next step
//! starts; on a later attempt a completed step returns its stored output and its
//! body does not run again.

use std::{collections::HashMap, future::Future, time::Duration};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    error::{Interrupt, StepError},
    store::{self, StoredStep},
    Engine,
};

/// Identity of the step being executed, handed to its body.
#[derive(Clone, Debug)]
pub struct StepInfo {
    pub run_id: Uuid,
    pub step: String,
    /// The attempt executing this step (the run's fence), 1-based.
    pub attempt: i64,
    /// `run_id:step`: the same on every attempt of this step, so a provider that
    /// honours idempotency keys recognises a replay.
    pub idempotency_key: String,
}

/// The durable context of one attempt of one run.
pub struct RunCtx {
    engine: Engine,
    pool: PgPool,
    run_id: Uuid,
    fence: i64,
    steps: HashMap<String, StoredStep>,
    current_step: Option<String>,
}

impl RunCtx {
    pub(crate) fn new(
        engine: Engine,
        run_id: Uuid,
        fence: i64,
        steps: HashMap<String, StoredStep>,
    ) -> Self {
        Self {
            pool: engine.pool().clone(),
            engine,
            run_id,
            fence,
            steps,
            current_step: None,
        }
    }

    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// The attempt number (the run's fence), 1-based.
    pub fn attempt(&self) -> i64 {
        self.fence
    }

    /// The deterministic key for external calls made by `step`: `run_id:step`.
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("{}:{step}", self.run_id)
    }

    /// The pool, for reads inside a step. Writes that must be exactly-once belong
    /// in `tx_step`.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The step that was running when the attempt stopped, for error reports.
    pub(crate) fn current_step(&self) -> Option<&str> {
        self.current_step.as_deref()
    }

    /// Runs `body` once for this run and checkpoints its output. At-least-once:
    /// if the process dies after `body` and before the checkpoint, the body runs
    /// again, with the same `StepInfo::idempotency_key`.
    pub async fn step<T, F, Fut>(&mut self, name: &str, body: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(StepInfo) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        if let Some(done) = self.completed(name)? {
            return Ok(done);
        }
        self.current_step = Some(name.to_owned());
        let started = Utc::now();
        let value = body(self.info(name)).await?;
        let output = encode(name, &value)?;
        // Grouped with other runs' checkpoints.
        let checkpoint = store::Checkpoint {
            run_id: self.run_id,
            fence: self.fence,
            step: name.to_owned(),
            output: output.clone(),
            started_at: started,
        };
        let kept = self.engine.checkpoints().submit(checkpoint).await.map_err(engine_error)?;
        self.remember(name, kept, output)?;
        Ok(value)
    }

    /// Runs `body` inside a transaction that also writes the step's checkpoint:
    /// its database effect and the checkpoint commit together or not at all
    /// (exactly-once). The checkpoint is fenced, so a worker that lost the run
    /// can never commit an effect.
    pub async fn tx_step<T, F>(&mut self, name: &str, body: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: for<'c> FnOnce(&'c mut PgConnection, StepInfo) -> BoxFuture<'c, Result<T, StepError>>,
    {
        if let Some(done) = self.completed(name)? {
            return Ok(done);
        }
        self.current_step = Some(name.to_owned());
        let started = Utc::now();
        let mut tx = self.pool.begin().await?;
        let value = body(&mut tx, self.info(name)).await?;
        let output = encode(name, &value)?;
        let kept = store::checkpoint_using(
            &mut tx, self.run_id, self.fence, name, false, &output, started,
        )
        .await
        .map_err(engine_error)?;
        // The checkpoint's fenced update locks the run row until commit, so no
        // takeover can slip between the fence check and the commit; a lost fence
        // drops the transaction and the effect with it.
        if kept {
            tx.commit().await?;
        }
        self.remember(name, kept, output)?;
        Ok(value)
    }

    /// A durable timer: the first call records `at`; until then the attempt ends
    /// and the run sleeps (across restarts), and once `at` has passed the call
    /// returns. A later call with another `at` keeps the first one.
    pub async fn sleep_until(&mut self, name: &str, at: DateTime<Utc>) -> Result<(), StepError> {
        let until = match self.steps.get(name) {
            Some(step) if !step.sleeping => return Ok(()),
            Some(step) => serde_json::from_value::<TimerOutput>(step.output.clone())
                .map(|t| t.until)
                .unwrap_or(at),
            None => at,
        };
        let output = serde_json::to_value(TimerOutput { until }).expect("timer output serialises");
        let due = until <= Utc::now();
        self.current_step = Some(name.to_owned());
        let started = Utc::now();
        let mut conn = self.pool.acquire().await?;
        let kept = store::checkpoint_using(
            &mut conn, self.run_id, self.fence, name, !due, &output, started,
        )
        .await
        .map_err(engine_error)?;
        if !kept {
            return Err(Interrupt::LostLease.into());
        }
        if !due {
            return Err(Interrupt::Sleep { until }.into());
        }
        self.remember(name, true, output)
    }

    /// Sleeps for `duration` counted from the first time this timer is reached.
    pub async fn sleep_for(&mut self, name: &str, duration: Duration) -> Result<(), StepError> {
        let at = Utc::now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.sleep_until(name, at).await
    }

    fn completed<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StepError> {
        match self.steps.get(name) {
            Some(step) if !step.sleeping => serde_json::from_value(step.output.clone())
                .map(Some)
                .map_err(|e| {
                    StepError::permanent(format!("stored output of step {name:?} does not decode: {e}"))
                }),
            _ => Ok(None),
        }
    }

    fn remember(&mut self, name: &str, kept: bool, output: Value) -> Result<(), StepError> {
        if !kept {
            return Err(Interrupt::LostLease.into());
        }
        self.steps.insert(
            name.to_owned(),
            StoredStep {
                sleeping: false,
                output,
            },
        );
        self.current_step = None;
        Ok(())
    }

    fn info(&self, name: &str) -> StepInfo {
        StepInfo {
            run_id: self.run_id,
            step: name.to_owned(),
            attempt: self.fence,
            idempotency_key: self.idempotency_key(name),
        }
    }
}

#[derive(Serialize, serde::Deserialize)]
struct TimerOutput {
    until: DateTime<Utc>,
}

fn encode<T: Serialize>(name: &str, value: &T) -> Result<Value, StepError> {
    serde_json::to_value(value)
        .map_err(|e| StepError::permanent(format!("output of step {name:?} does not serialise: {e}")))
}

fn engine_error(e: super::error::Error) -> StepError {
    StepError::transient(e)
}
