//! How a step or a run can fail, and what the engine does about it.

use chrono::{DateTime, Utc};

/// The error a workflow step returns. The variant decides the retry:
/// `Transient` backs off and retries, `RateLimited` resumes at `retry_after`
/// without burning an attempt, `Permanent` fails the run at once.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Timeouts, 5xx, connection errors: retried with exponential backoff.
    #[error("{0}")]
    Transient(String),
    /// The provider asked us to come back later.
    #[error("rate limited until {retry_after}: {message}")]
    RateLimited {
        retry_after: DateTime<Utc>,
        message: String,
    },
    /// Validation errors and 4xx answers that will not change on retry.
    #[error("{0}")]
    Permanent(String),
    /// Engine control flow (a timer, a lost lease). Workflows only pass it on with `?`.
    #[error(transparent)]
    Interrupted(#[from] Interrupt),
}

/// Why the engine stopped running a workflow's code in this attempt.
#[derive(Debug, thiserror::Error)]
pub enum Interrupt {
    /// A durable timer: end the attempt and wake the run at `until`.
    #[error("sleeping until {until}")]
    Sleep { until: DateTime<Utc> },
    /// Another attempt took the run over (or ops cancelled it): write nothing more.
    #[error("lease lost: the run was taken over or cancelled")]
    LostLease,
}

impl StepError {
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self::Transient(message.to_string())
    }

    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }

    pub fn rate_limited(retry_after: DateTime<Utc>, message: impl std::fmt::Display) -> Self {
        Self::RateLimited {
            retry_after,
            message: message.to_string(),
        }
    }

    /// Stable code stored with the attempt and shown to ops.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::RateLimited { .. } => "rate_limited",
            Self::Permanent(_) => "permanent",
            Self::Interrupted(Interrupt::Sleep { .. }) => "sleeping",
            Self::Interrupted(Interrupt::LostLease) => "lost_lease",
        }
    }
}

/// A database error inside a step is worth retrying: the database may be back
/// on the next attempt, and the step's transaction was rolled back.
impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(format!("database: {e}"))
    }
}

/// Errors of the engine itself (not of a workflow's code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown workflow {0:?}")]
    UnknownWorkflow(String),
    #[error("workflow input does not match {workflow}: {reason}")]
    BadInput { workflow: String, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("queue: {0}")]
    Queue(#[from] apalis_postgres::Error),
    /// A grouped write (see `batch.rs`) failed for a reason the whole group
    /// shares (the database is down, say), or the batch writer stopped.
    #[error("grouped write: {0}")]
    Batch(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Starting a child run inside a step: a database error is worth retrying; an
/// input that does not serialize or an unknown flow never will be.
impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        match e {
            Error::Database(_) | Error::Queue(_) | Error::Batch(_) => Self::Transient(e.to_string()),
            Error::UnknownWorkflow(_) | Error::BadInput { .. } => Self::Permanent(e.to_string()),
        }
    }
}
