//! Self-test workflows, registered only with `RELEVO_ENABLE_TEST_WORKFLOWS=1`.
//! The crash tests drive them through the real binary, and `just bench-engine`
//! measures the engine with them. Each step body logs a row in
//! `selftest.effects`, so a test can count how often a body really ran.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::engine::{Registry, RetryPolicy, RunCtx, StepError, Workflow};

pub fn register(registry: Registry) -> Registry {
    registry.register(Steps).register(Bench)
}

/// `selftest.steps`: `steps` plain steps, each logging its effect outside the
/// checkpoint transaction (so a re-executed body would show), with an optional
/// pause between steps and an optional durable timer after the first step.
pub struct Steps;

#[derive(Serialize, Deserialize)]
pub struct StepsInput {
    #[serde(default = "three")]
    pub steps: u32,
    /// Pause after each step, outside any step (a crash here is "between steps").
    #[serde(default)]
    pub pause_ms: u64,
    /// Sleep on a durable timer for this long after the first step.
    #[serde(default)]
    pub timer_ms: Option<u64>,
    #[serde(default)]
    pub key: Option<String>,
    /// Abort the whole process inside this step, after logging its effect: a
    /// poison run for the orphan-loop regression test.
    #[serde(default)]
    pub abort_in_step: Option<u32>,
    /// Fail this step permanently until a `selftest.effects` row with step
    /// `switch` exists (for the console tests: fail, then succeed on retry).
    #[serde(default)]
    pub fail_in_step: Option<u32>,
}

fn three() -> u32 {
    3
}

impl Workflow for Steps {
    const NAME: &'static str = "selftest.steps";
    type Input = StepsInput;

    fn ordering_key(input: &StepsInput) -> Option<String> {
        input.key.clone()
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5),
            schedule: None,
        }
    }

    async fn run(&self, ctx: &mut RunCtx, input: StepsInput) -> Result<(), StepError> {
        let pool = ctx.pool().clone();
        for i in 1..=input.steps {
            let name = format!("step-{i}");
            let p = pool.clone();
            let abort = input.abort_in_step == Some(i);
            let fail = input.fail_in_step == Some(i);
            ctx.step(&name, |info| async move {
                if fail && !switched_on(&p).await? {
                    return Err(StepError::permanent("selftest: failing on purpose until the switch is on"));
                }
                log_effect(&p, info.run_id, &info.step).await?;
                if abort {
                    std::process::abort();
                }
                Ok(())
            })
            .await?;
            if i == 1 {
                if let Some(ms) = input.timer_ms {
                    ctx.sleep_for("timer", Duration::from_millis(ms)).await?;
                    let pool = pool.clone();
                    ctx.step("after-timer", |info| async move { log_effect(&pool, info.run_id, &info.step).await })
                        .await?;
                }
            }
            if input.pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(input.pause_ms)).await;
            }
        }
        Ok(())
    }
}

async fn switched_on(pool: &sqlx::PgPool) -> Result<bool, StepError> {
    Ok(sqlx::query_scalar("select exists(select 1 from selftest.effects where step = 'switch')").fetch_one(pool).await?)
}

/// `selftest.bench`: three database steps, each writing one row together with
/// its checkpoint (the `just bench-engine` workload); `steps` takes fewer, so
/// the bench can tell a run's fixed cost from a step's.
pub struct Bench;

#[derive(Serialize, Deserialize)]
pub struct BenchInput {
    /// How many of the three steps to run (more counts as three).
    #[serde(default = "three")]
    pub steps: u32,
}

impl Workflow for Bench {
    const NAME: &'static str = "selftest.bench";
    type Input = BenchInput;

    async fn run(&self, ctx: &mut RunCtx, input: BenchInput) -> Result<(), StepError> {
        for step in ["one", "two", "three"].into_iter().take(input.steps as usize) {
            ctx.tx_step(step, |tx, info| {
                Box::pin(async move {
                    sqlx::query("insert into selftest.effects (run_id, step) values ($1, $2)")
                        .bind(info.run_id)
                        .bind(&info.step)
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }
}

async fn log_effect(pool: &PgPool, run_id: Uuid, step: &str) -> Result<(), StepError> {
    sqlx::query("insert into selftest.effects (run_id, step) values ($1, $2)")
        .bind(run_id)
        .bind(step)
        .execute(pool)
        .await?;
    Ok(())
}
