//! Ingest: the 2xx promise. A verified webhook is answered only after one
//! commit holds its raw body, the run it starts and that run's wake-up.
//!
//! Concurrent requests hand their rows to a few writer tasks, each of which
//! commits everything waiting in one transaction (flushing as soon as it has
//! taken what is queued, never waiting when idle), then answers each request.
//! One fsync serves many webhooks.

pub mod events;
mod writer;

pub use events::NewEvent;
pub use writer::{IngestError, IngestWriter};
