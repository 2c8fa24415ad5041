//! The `Workflow` trait and the registry of flows known to this process.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use futures::future::BoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use super::{ctx::RunCtx, error::StepError, retry::RetryPolicy};

/// A durable workflow: a persisted name, a typed input, an optional ordering key
/// and a `run` made of named steps (`ctx.step`, `ctx.tx_step`, `ctx.sleep_until`).
///
/// `NAME` and the step names are durable contracts: runs in flight refer to them.
pub trait Workflow: Send + Sync + 'static {
    /// Persisted in `engine.runs.workflow`; never rename one with runs in flight.
    const NAME: &'static str;
    /// Bump when the step list changes incompatibly; stored with each run.
    const VERSION: i32 = 1;
    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Runs with the same key never overlap and start in creation order.
    fn ordering_key(_input: &Self::Input) -> Option<String> {
        None
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    fn run(
        &self,
        ctx: &mut RunCtx,
        input: Self::Input,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// A workflow with its input type erased, as the executor sees it.
pub(crate) trait ErasedWorkflow: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> i32;
    fn retry_policy(&self) -> RetryPolicy;
    fn ordering_key(&self, input: &Value) -> Result<Option<String>, serde_json::Error>;
    fn run<'a>(&'a self, ctx: &'a mut RunCtx, input: Value) -> BoxFuture<'a, Result<(), StepError>>;
}

impl<W: Workflow> ErasedWorkflow for W {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn version(&self) -> i32 {
        W::VERSION
    }

    fn retry_policy(&self) -> RetryPolicy {
        Workflow::retry_policy(self)
    }

    fn ordering_key(&self, input: &Value) -> Result<Option<String>, serde_json::Error> {
        let typed: W::Input = serde_json::from_value(input.clone())?;
        Ok(W::ordering_key(&typed))
    }

    fn run<'a>(&'a self, ctx: &'a mut RunCtx, input: Value) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input: W::Input = serde_json::from_value(input)
                .map_err(|e| StepError::permanent(format!("input does not decode: {e}")))?;
            Workflow::run(self, ctx, input).await
        })
    }
}

/// The flows registered at start-up, by name.
#[derive(Clone, Default)]
pub struct Registry {
    flows: BTreeMap<&'static str, Arc<dyn ErasedWorkflow>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow; a second registration of the same name replaces the first.
    pub fn register<W: Workflow>(mut self, workflow: W) -> Self {
        self.flows.insert(W::NAME, Arc::new(workflow));
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn ErasedWorkflow>> {
        self.flows.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.flows.keys().copied()
    }
}

/// The apalis queue that carries a workflow's wake-ups. Explicit, never the Rust
/// type path, so moving a type cannot strand queued jobs.
pub fn queue_name(workflow: &str) -> String {
    format!("relevo.{workflow}")
}
