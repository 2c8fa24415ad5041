//! Ingest: the 2xx promise. A verified webhook is answered only after one
//! commit holds its raw body, the run it starts and that run's wake-up.
//!
//! Concurrent requests hand their rows to a few writer tasks, each of which
//! commits everything waiting in one transaction (flushing as soon as it has
//! taken what is queued, never waiting when idle), then answers each request.
//! One fsync serves many webhooks.

//!
//! Ingest names no flow: the run each stored event starts is chosen by the
//! `EntryFlow` that `workflows/mod.rs` hands to the writer.

pub mod events;
mod writer;

use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

pub use events::{NewEvent, RawBody};
pub use writer::{IngestError, IngestWriter};

use crate::{
    engine::{self, Engine},
    providers::Provider,
};

/// A newly stored event and the id of the run it must start.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub event_id: Uuid,
    pub run_id: Uuid,
    pub provider: Provider,
    pub kind: String,
    /// Events sharing it are handled in the order given to the entry flow
    /// (their arrival order).
    pub sequence_key: Option<String>,
}

/// Starts, inside the ingest transaction, the run of each newly stored event
/// (with the run id already written on the event row).
pub trait EntryFlow: Send + Sync + 'static {
    fn start_using<'a>(
        &'a self,
        engine: &'a Engine,
        conn: &'a mut PgConnection,
        events: &'a [StoredEvent],
    ) -> BoxFuture<'a, engine::Result<()>>;
}
