//! The delivery worker: claims due deliveries with `FOR UPDATE SKIP LOCKED` and
//! a lease longer than the request timeout, sends them with no transaction
//! open, and records every attempt. Retries follow the configured schedule with
//! ±20 % jitter; 429/503 honour `Retry-After` (capped); 410 disables the
//! subscription; a subscription failing for `disable_after` is disabled.

use std::{sync::Arc, time::{Duration, Instant}};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{signing, ssrf, OutboundSettings};

const MAX_RESPONSE_BYTES: usize = 4096;
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

pub struct Worker {
    pool: PgPool,
    client: reqwest::Client,
    settings: OutboundSettings,
    results: tokio::sync::mpsc::Sender<Recorded>,
}

/// One attempt's result, waiting to be written with others in one statement.
struct Recorded {
    id: Uuid,
    attempt: i32,
    status: &'static str,
    code: Option<i32>,
    error: Option<String>,
    next: Option<DateTime<Utc>>,
    log: AttemptLog,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// A claimed delivery with what sending it needs (one query).
struct AttemptLog {
    started_at: DateTime<Utc>,
    duration_ms: i32,
    error_kind: Option<&'static str>,
    response_body: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    event_id: Uuid,
    subscription_id: Uuid,
    attempt: i32,
    event_type: Option<String>,
    payload: Option<Value>,
    event_created_at: Option<DateTime<Utc>>,
    url: Option<String>,
    subscription_status: Option<String>,
    rate_limit_per_sec: Option<i32>,
    /// Active signing keys, newest first.
    keys: Option<Vec<Vec<u8>>>,
}

/// How one attempt ended.
enum Outcome {
    Delivered(u16),
    Failed { status: Option<u16>, kind: &'static str, retry_after: Option<Duration>, gone: bool },
}

impl Worker {
    pub fn new(pool: PgPool, settings: OutboundSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(ssrf::GuardedResolver {
                allow: Arc::new(settings.allow_nets.clone()),
            }))
            .user_agent(concat!("Relevo-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client builds");
        let (results, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(write_results(pool.clone(), queue));
        Self { pool, client, settings, results }
    }

    /// Runs until `stop` resolves; in-flight sends finish first.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut listener = PgListener::connect_with(&self.pool).await.ok();
        if let Some(l) = listener.as_mut() {
            let _ = l.listen("relevo_deliveries").await;
        }
        while !*stop.borrow() {
            let free = slots.available_permits().max(1) as i64;
            let claimed = match self.claim(free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error.message = %e, "claiming deliveries failed");
                    Vec::new()
                }
            };
            let idle = claimed.is_empty();
            for c in claimed {
                let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.deliver(&c).await {
                        tracing::warn!(delivery.id = %c.id, error.message = %e, "delivery bookkeeping failed; the lease will expire and it will be retried");
                    }
                    drop(permit);
                });
            }
            if idle {
                // Woken by the insert trigger's NOTIFY, or by the poll that backs it up.
                let notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()).map_err(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let _ = slots.acquire_many(self.settings.concurrency.max(1) as u32).await;
    }

    async fn claim(&self, n: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        sqlx::query_as(
            "with claimed as (
                update deliveries d set status = 'delivering', attempts = d.attempts + 1,
                       lease_until = now() + make_interval(secs => $2)
                 where d.id in (select id from deliveries
                                 where next_attempt_at <= now()
                                   and (status = 'pending' or (status = 'delivering' and lease_until < now()))
                                 order by next_attempt_at limit $1 for update skip locked)
             returning d.id, d.event_id, d.subscription_id, d.attempts)
             select c.id, c.event_id, c.subscription_id, c.attempts as attempt,
                    e.type as event_type, e.payload, e.created_at as event_created_at,
                    s.url, s.status as subscription_status, s.rate_limit_per_sec,
                    (select array_agg(k.key order by k.id desc) from subscription_secrets k
                      where k.subscription_id = c.subscription_id
                        and (k.expires_at is null or k.expires_at > now())) as keys
               from claimed c
               left join outbox_events e on e.id = c.event_id
               left join subscriptions s on s.id = c.subscription_id",
        )
        .bind(n)
        // Longer than the request timeout, so a live sender never loses its claim.
        .bind(self.settings.lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    async fn deliver(&self, c: &Claimed) -> Result<(), sqlx::Error> {
        let (Some(kind), Some(payload), Some(created_at), Some(url), Some(status)) = (
            c.event_type.as_deref(),
            c.payload.as_ref(),
            c.event_created_at,
            c.url.as_deref(),
            c.subscription_status.as_deref(),
        ) else {
            return self.fail_unsendable(c, "event or subscription deleted").await;
        };
        if status != "enabled" {
            return self.fail_unsendable(c, "subscription disabled").await;
        }
        let rate = c.rate_limit_per_sec;
        let keys = c.keys.clone().unwrap_or_default();
        if let Some(limit) = rate {
            if !self.take_rate_slot(c.subscription_id, limit).await? {
                return self.throttle(c).await;
            }
        }
        let body = serde_json::to_vec(&json!({"id": c.event_id, "type": kind, "created_at": created_at, "data": payload}))
            .expect("event serialises");
        let started_at = Utc::now();
        let clock = Instant::now();
        let (outcome, response_body) = self.send(url, &keys, c.event_id, kind, &body).await;
        let duration_ms = clock.elapsed().as_millis() as i32;
        metrics::histogram!("relevo_webhook_delivery_duration_seconds").record(clock.elapsed().as_secs_f64());
        let (status_code, error_kind) = match &outcome {
            Outcome::Delivered(s) => (Some(*s), None),
            Outcome::Failed { status, kind, .. } => (*status, Some(*kind)),
        };
        if let Some(code) = status_code {
            metrics::counter!("relevo_webhook_delivery_http_status_total", "code" => code.to_string()).increment(1);
        }
        let attempt = || AttemptLog { started_at, duration_ms, error_kind, response_body: response_body.clone() };
        match outcome {
            Outcome::Delivered(code) => {
                metrics::counter!("relevo_webhook_deliveries_total", "status" => "delivered").increment(1);
                self.record(c, attempt(), "delivered", Some(code), None, None).await?;
                // Touch the (hot) subscription row only to end a failure streak, or
                // at most once a second for last_success_at.
                sqlx::query(
                    "update subscriptions set failing_since = null, last_success_at = now()
                      where id = $1 and (failing_since is not null or last_success_at is null
                                         or last_success_at < now() - interval '1 second')",
                )
                .bind(c.subscription_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            Outcome::Failed { status, kind, retry_after, gone } => {
                let message = match status {
                    Some(s) => format!("HTTP {s}"),
                    None => kind.to_owned(),
                };
                if gone {
                    self.record(c, attempt(), "failed", status, Some(&message), None).await?;
                    return self.disable(c.subscription_id, "the endpoint answered 410 Gone").await;
                }
                match self.next_attempt(c.attempt, retry_after) {
                    Some(at) => {
                        metrics::counter!("relevo_webhook_retries_total").increment(1);
                        self.record(c, attempt(), "pending", status, Some(&message), Some(at)).await?;
                    }
                    None => {
                        metrics::counter!("relevo_webhook_deliveries_total", "status" => "failed").increment(1);
                        self.record(c, attempt(), "failed", status, Some(&message), None).await?;
                    }
                }
                self.note_failure(c.subscription_id).await
            }
        }
    }

    /// Hands the attempt log and the delivery's new state to the result writer
    /// and waits until they are committed.
    async fn record(
        &self,
        c: &Claimed,
        log: AttemptLog,
        status: &'static str,
        code: Option<u16>,
        error: Option<&str>,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let item = Recorded {
            id: c.id,
            attempt: c.attempt,
            status,
            code: code.map(i32::from),
            error: error.map(str::to_owned),
            next,
            log,
            done,
        };
        let closed = || sqlx::Error::Protocol("the delivery result writer stopped".into());
        self.results.send(item).await.map_err(|_| closed())?;
        committed.await.map_err(|_| closed())?.map_err(sqlx::Error::Protocol)
    }

    async fn send(&self, url: &str, keys: &[Vec<u8>], id: Uuid, kind: &str, body: &[u8]) -> (Outcome, Option<String>) {
        // IP-literal hosts never reach the resolver: vet them here.
        if let Ok(parsed) = url::Url::parse(url) {
            if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = parsed.host() {
                let ip = match parsed.host() {
                    Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
                    Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
                    _ => unreachable!(),
                };
                if ssrf::vet(ip, &self.settings.allow_nets).is_err() {
                    return (Outcome::Failed { status: None, kind: "blocked_address", retry_after: None, gone: false }, None);
                }
            }
        }
        let Some(newest) = keys.first() else {
            return (Outcome::Failed { status: None, kind: "no_signing_key", retry_after: None, gone: false }, None);
        };
        let webhook_id = id.to_string();
        let ts = Utc::now().timestamp();
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signing::webhook_signature(keys, &webhook_id, ts, body))
            .header("X-Signature", signing::x_signature(newest, body))
            .header("X-Event", kind)
            .body(body.to_vec());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if is_blocked(&e) {
                    "blocked_address"
                } else if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "request_error"
                };
                return (Outcome::Failed { status: None, kind, retry_after: None, gone: false }, None);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(RETRY_AFTER_CAP));
        let body = read_capped(response).await;
        let outcome = if (200..300).contains(&status) {
            Outcome::Delivered(status)
        } else {
            Outcome::Failed {
                status: Some(status),
                kind: "http_status",
                retry_after: if status == 429 || status == 503 { retry_after } else { None },
                gone: status == 410,
            }
        };
        (outcome, Some(body))
    }

    /// Takes one of the subscription's `limit` slots in the current second, shared
    /// by all nodes through one upserted row.
    async fn take_rate_slot(&self, subscription: Uuid, limit: i32) -> Result<bool, sqlx::Error> {
        let taken: Option<i32> = sqlx::query_scalar(
            "insert into subscription_rate_windows (subscription_id, window_start, sent)
             values ($1, date_trunc('second', clock_timestamp()), 1)
             on conflict (subscription_id, window_start) do update
                set sent = subscription_rate_windows.sent + 1
              where subscription_rate_windows.sent < $2
             returning sent",
        )
        .bind(subscription)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Over the rate limit: back to pending for the next second, attempt not counted.
    async fn throttle(&self, c: &Claimed) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update deliveries set status = 'pending', attempts = attempts - 1, lease_until = null,
                    next_attempt_at = date_trunc('second', clock_timestamp()) + interval '1 second'
              where id = $1 and attempts = $2",
        )
        .bind(c.id)
        .bind(c.attempt)
        .execute(&self.pool)
        .await?;
        sqlx::query("delete from subscription_rate_windows where window_start < now() - interval '1 minute'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// After `attempt` failed: the schedule's wait ±20 %, at least `retry_after`.
    fn next_attempt(&self, attempt: i32, retry_after: Option<Duration>) -> Option<DateTime<Utc>> {
        let base = *self.settings.retry_schedule.get(attempt.max(1) as usize - 1)?;
        let jitter = rand::rng().random_range(0.8..=1.2);
        let wait = base.mul_f64(jitter).max(retry_after.unwrap_or_default());
        Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
    }

    /// Ends a delivery that cannot be sent at all (no attempt to log).
    async fn fail_unsendable(&self, c: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update deliveries set status = 'failed', last_error = $3, lease_until = null
              where id = $1 and attempts = $2",
        )
        .bind(c.id)
        .bind(c.attempt)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts the failure clock; past `disable_after` without a success, disables.
    async fn note_failure(&self, subscription: Uuid) -> Result<(), sqlx::Error> {
        let since: Option<DateTime<Utc>> = sqlx::query_scalar(
            "update subscriptions set failing_since = coalesce(failing_since, now()) where id = $1 returning failing_since",
        )
        .bind(subscription)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        if let Some(since) = since {
            if Utc::now() - since > chrono::Duration::from_std(self.settings.disable_after).unwrap_or(chrono::Duration::MAX) {
                self.disable(subscription, "failing without a success for too long").await?;
            }
        }
        Ok(())
    }

    async fn disable(&self, subscription: Uuid, reason: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "update subscriptions set status = 'disabled', disabled_reason = $2, updated_at = now()
              where id = $1 and status = 'enabled'",
        )
        .bind(subscription)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            crate::domain::outbox::record_using(
                &mut tx,
                "subscription.disabled",
                json!({"subscription_id": subscription, "reason": reason}),
            )
            .await?;
        }
        tx.commit().await
    }
}

fn is_blocked(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<ssrf::Refused>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn read_capped(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= MAX_RESPONSE_BYTES {
            buf.truncate(MAX_RESPONSE_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Publishes an event from the shop's systems. With an idempotency key that was
/// used before, returns the earlier event and `false`.
pub async fn publish(
    pool: &PgPool,
    kind: &str,
    payload: &Value,
    idempotency_key: Option<&str>,
) -> Result<(Uuid, bool), sqlx::Error> {
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "insert into outbox_events (id, type, payload, idempotency_key, source) values ($1, $2, $3, $4, 'api')
         on conflict (idempotency_key) do nothing returning id",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(idempotency_key)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(id) => Ok((id, true)),
        None => {
            let existing = sqlx::query_scalar("select id from outbox_events where idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(pool)
                .await?;
            Ok((existing, false))
        }
    }
}

/// Sends a `relevo.test` event to one subscription now.
pub async fn send_test(pool: &PgPool, subscription: Uuid) -> Result<Uuid, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let event = crate::domain::outbox::record_using(
        &mut tx,
        "relevo.test",
        json!({"subscription_id": subscription, "message": "test event from Relevo"}),
    )
    .await?;
    let delivery: Uuid = sqlx::query_scalar(
        "insert into deliveries (event_id, subscription_id) values ($1, $2) returning id",
    )
    .bind(event)
    .bind(subscription)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("select pg_notify('relevo_deliveries', '')").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Queues a delivery again now (any status); `false` if it does not exist.
pub async fn resend(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update deliveries set status = 'pending', next_attempt_at = now(), lease_until = null where id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    sqlx::query("select pg_notify('relevo_deliveries', '')").execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Re-queues every failed delivery of a subscription created since `since`.
pub async fn recover(pool: &PgPool, subscription: Uuid, since: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update deliveries set status = 'pending', next_attempt_at = now(), lease_until = null
          where subscription_id = $1 and status = 'failed' and created_at >= $2",
    )
    .bind(subscription)
    .bind(since)
    .execute(pool)
    .await?;
    sqlx::query("select pg_notify('relevo_deliveries', '')").execute(pool).await?;
    Ok(done.rows_affected())
}

/// Writes queued attempt results: everything waiting goes in one statement
/// (logs + guarded state updates), so one commit serves many deliveries.
async fn write_results(pool: PgPool, mut queue: tokio::sync::mpsc::Receiver<Recorded>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match queue.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let result = sqlx::query(
            "with input as (
                select * from unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::timestamptz[],
                                     $7::timestamptz[], $8::int[], $9::text[], $10::text[])
                       as t(id, attempt, status, code, error, next, started_at, duration_ms, error_kind, body)),
             logged as (
                insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind, response_body)
                select id, attempt, started_at, duration_ms, code, error_kind, body from input)
             update deliveries d
                set status = i.status, last_status = i.code, last_error = i.error, lease_until = null,
                    next_attempt_at = coalesce(i.next, d.next_attempt_at),
                    delivered_at = case when i.status = 'delivered' then now() else d.delivered_at end
               from input i
              where d.id = i.id and d.attempts = i.attempt",
        )
        .bind(batch.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.attempt).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.code).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.next).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.log.started_at).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.log.duration_ms).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.log.error_kind).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.log.response_body.clone()).collect::<Vec<_>>())
        .execute(&pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
        for r in batch {
            let _ = r.done.send(result.clone());
        }
    }
}
