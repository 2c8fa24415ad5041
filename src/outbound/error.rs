//! The one error type of the outbound feature. Most operations can only fail in
//! the database; the delivery worker can also lose its result writer, the task
//! that commits attempt results in batches. Either way the claimed delivery's
//! lease expires and another pass retries it, so callers only log these.

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The result writer task is gone (the runtime is shutting down).
    #[error("the delivery result writer stopped")]
    ResultWriterStopped,
    /// This attempt's result did not commit. Shared because when the database
    /// fails a whole batch, every attempt in it gets the same failure.
    #[error("writing a delivery result failed")]
    ResultBatch(#[source] Arc<sqlx::Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
