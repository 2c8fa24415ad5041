//! Group commit for the engine's own small writes: callers hand a request to
//! one task, which writes every request waiting at that moment in one
//! statement and answers each caller. It never waits to fill a batch: an idle
//! engine writes a batch of one at once, a busy one writes what queued up
//! while the previous batch was in flight (as the ingest writer does).

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::error::{Error, Result};

type Request<Req, Resp> = (Req, oneshot::Sender<Result<Resp>>);

/// A handle to one batching task; cheap to share.
pub(crate) struct Batcher<Req, Resp> {
    requests: mpsc::UnboundedSender<Request<Req, Resp>>,
}

impl<Req: Send + Sync + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Spawns the task. `write` gets up to `max` requests and returns one
    /// answer per request, in order. When the database refuses a group for
    /// its values, each request is written alone, so one bad request fails
    /// alone. The task ends with the last handle.
    pub(crate) fn spawn<F>(max: usize, write: F) -> Self
    where
        F: for<'a> Fn(&'a [Req]) -> BoxFuture<'a, Result<Vec<Resp>>> + Send + 'static,
    {
        let (requests, mut queue) = mpsc::unbounded_channel::<Request<Req, Resp>>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while queue.recv_many(&mut batch, max).await > 0 {
                let (reqs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                match write(&reqs).await {
                    Ok(answers) => {
                        debug_assert_eq!(answers.len(), replies.len(), "one answer per request");
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(Error::Database(e)) if reqs.len() > 1 && crate::db::refuses_values(&e) => {
                        for (req, reply) in reqs.iter().zip(replies) {
                            let answer = write(std::slice::from_ref(req)).await.and_then(|mut one| {
                                one.pop().ok_or_else(|| Error::Batch("no answer for a request".into()))
                            });
                            let _ = reply.send(answer);
                        }
                    }
                    Err(e) => {
                        // Not the requests' fault (the database is down, say):
                        // every caller gets the same error.
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(Error::Batch(message.clone())));
                        }
                    }
                }
            }
        });
        Self { requests }
    }

    /// Queues `req` and waits for its answer.
    pub(crate) async fn submit(&self, req: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((req, reply))
            .map_err(|_| Error::Batch("the batch writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Batch("the batch writer stopped before answering".into()))?
    }
}
