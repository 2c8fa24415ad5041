//! apalis workers that deliver wake-ups to the executor, one queue per workflow.
//!
//! Settings follow `apalis-notes.md`: explicit queue names, notifications *and*
//! a poll interval (`wake.rs`: one shared LISTEN, never a lost wake-up),
//! `batch_size ≥ concurrency`, unique worker names, a Monitor that restarts
//! workers, and `lock_tasks(false)` (the run's lease is the real lock).

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};

use super::{store::WakeJob, workflow::queue_name, Engine};

/// Handle to the running workers.
pub struct Workers {
    task: tokio::task::JoinHandle<()>,
    listener: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Workers {
    /// Starts one worker per registered workflow.
    pub fn start(engine: Engine) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let listener = engine.wake_signals().spawn_listener(engine.pool().clone());
        let sweeper = super::sweep::spawn(engine.clone());
        let mut monitor = Monitor::new()
            .should_restart(|ctx, err| {
                tracing::warn!(worker = %ctx.name(), error.message = %err, "worker stopped; restarting");
                true
            })
            .shutdown_timeout(Duration::from_secs(6));
        for name in engine.registry().names() {
            let engine = engine.clone();
            monitor = monitor.register(move |restarts| {
                let s = engine.settings();
                let config = Config::default()
                    .queue(queue_name(name))
                    .batch_size(s.batch_size)
                    .heartbeat_interval(s.heartbeat)
                    .missed_heartbeats(s.missed_heartbeats)
                    .lock_tasks(false);
                let storage = PostgresStorage::<WakeJob>::new(engine.pool())
                    .with_config(config)
                    .poll_with_strategy(engine.wake_signals().strategy(&queue_name(name), s.poll_interval));
                WorkerBuilder::new(format!("{}-{name}-{restarts}", engine.node()))
                    .backend(storage)
                    .data(engine.clone())
                    .concurrency(s.concurrency)
                    // Each run on its own tokio task, so runs use every core
                    // instead of sharing the worker's task.
                    .parallelize(tokio::spawn)
                    .build(handle_wake)
            });
        }
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stopped.wait_for(|s| *s).await;
                Ok(())
            };
            if let Err(e) = monitor.run_with_signal(signal).await {
                tracing::error!(error.message = %e, "workers exited with errors");
            }
        });
        Self { task, listener, sweeper, stop }
    }

    /// Stops fetching, lets in-flight runs finish (bounded by the monitor's
    /// shutdown timeout), and waits for the workers to exit.
    pub async fn shutdown(self) {
        self.sweeper.abort();
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.listener.abort();
    }
}

async fn handle_wake(job: WakeJob, task: TaskId, engine: Data<Engine>) -> Result<(), BoxDynError> {
    match engine.execute(job, task.to_string()).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(workflow.run_id = %job.run_id, error.message = %e, "wake-up failed; apalis will retry it");
            // apalis re-fetches failed jobs with no delay: slow the loop down.
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(Box::new(e))
        }
    }
}
