//! Guarantees 1–4, 6–8 of ARCHITECTURE.md "The engine", in process.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use relevo::engine::{Registry, RetryPolicy, RunCtx, StepError, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(500),
        cap: Duration::from_secs(1),
        schedule: None,
    }
}

// ---- 1. checkpointed steps ----

#[derive(Default)]
struct Counters {
    first: AtomicUsize,
    second: AtomicUsize,
}

struct FlakySecondStep(Arc<Counters>);

impl Workflow for FlakySecondStep {
    const NAME: &'static str = "test.flaky_second";
    type Input = serde_json::Value;

    fn retry_policy(&self) -> RetryPolicy {
        quick_policy(5)
    }

    async fn run(&self, ctx: &mut RunCtx, _: serde_json::Value) -> Result<(), StepError> {
        let c = self.0.clone();
        let token: String = ctx
            .step("first", |_| async move {
                c.first.fetch_add(1, Ordering::SeqCst);
                Ok(Uuid::now_v7().to_string())
            })
            .await?;
        let c = self.0.clone();
        ctx.step("second", |_| async move {
            if c.second.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StepError::transient("first try fails"));
            }
            Ok(token)
        })
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_completed_step_does_not_run_again_and_its_output_is_reused() {
    // Arrange
    let db = TestDb::new().await;
    let counters = Arc::new(Counters::default());
    let app = spawn_app(&db, Registry::new().register(FlakySecondStep(counters.clone()))).await;

    // Act
    let id = app.engine.start::<FlakySecondStep>(&json!({})).await.unwrap();
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;

    // Assert
    assert_eq!(counters.first.load(Ordering::SeqCst), 1, "first step ran once");
    assert_eq!(counters.second.load(Ordering::SeqCst), 2, "second step retried");
    let (first, second): (serde_json::Value, serde_json::Value) = sqlx::query_as(
        "select (select output from engine.run_steps where run_id = $1 and step = 'first'),
                (select output from engine.run_steps where run_id = $1 and step = 'second')",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(first, second, "the retry saw the first step's stored output");
    let attempts: i64 = sqlx::query_scalar("select count(*) from engine.run_attempts where run_id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    app.stop().await;
}

// ---- 2. database steps are exactly-once ----

struct Ledger(Arc<AtomicUsize>);

impl Workflow for Ledger {
    const NAME: &'static str = "test.ledger";
    type Input = serde_json::Value;

    fn retry_policy(&self) -> RetryPolicy {
        quick_policy(5)
    }

    async fn run(&self, ctx: &mut RunCtx, _: serde_json::Value) -> Result<(), StepError> {
        let calls = self.0.clone();
        ctx.tx_step("book", move |tx, info| {
            Box::pin(async move {
                sqlx::query("insert into selftest.effects (run_id, step) values ($1, $2)")
                    .bind(info.run_id)
                    .bind(&info.step)
                    .execute(&mut *tx)
                    .await?;
                // The first attempt fails after writing: its write must vanish.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StepError::transient("fails after the insert"));
                }
                Ok(())
            })
        })
        .await?;
        ctx.step("after", |_| async { Err::<(), _>(StepError::permanent("stop here")) }).await
    }
}

#[tokio::test]
async fn a_database_step_commits_its_effect_with_its_checkpoint_or_not_at_all() {
    // Arrange
    let db = TestDb::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let app = spawn_app(&db, Registry::new().register(Ledger(calls.clone()))).await;

    // Act: attempt 1 rolls back, attempt 2 commits, step "after" fails the run;
    // then ops retry the run: the booked step must not run again.
    let id = app.engine.start::<Ledger>(&json!({})).await.unwrap();
    wait_status(&db.pool, id, "failed", Duration::from_secs(20)).await;
    relevo::engine::ops::retry(&db.pool, id, None, None).await.unwrap();
    wait_for("the retried attempt to end", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from engine.run_attempts where run_id = $1 and finished_at is not null",
        )
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (n == 3).then_some(())
    })
    .await;

    // Assert
    let effects: i64 = sqlx::query_scalar("select count(*) from selftest.effects where run_id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(effects, 1, "one committed effect: the failed attempt's insert rolled back");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the committed step never ran again");
    app.stop().await;
}

// ---- 3. deterministic idempotency keys ----

struct Charge {
    api: String,
}

impl Workflow for Charge {
    const NAME: &'static str = "test.charge";
    type Input = serde_json::Value;

    fn retry_policy(&self) -> RetryPolicy {
        quick_policy(5)
    }

    async fn run(&self, ctx: &mut RunCtx, _: serde_json::Value) -> Result<(), StepError> {
        let api = self.api.clone();
        let attempt = ctx.attempt();
        let charge_id: String = ctx
            .step("charge", |info| async move {
                let resp: serde_json::Value = reqwest::Client::new()
                    .post(format!("{api}/v1/charges"))
                    .header("Idempotency-Key", &info.idempotency_key)
                    .send()
                    .await
                    .map_err(StepError::transient)?
                    .json()
                    .await
                    .map_err(StepError::transient)?;
                // The provider processed it, but our first attempt "times out".
                if attempt == 1 {
                    return Err(StepError::transient("timeout reading the answer"));
                }
                Ok(resp["id"].as_str().unwrap_or_default().to_owned())
            })
            .await?;
        assert_eq!(charge_id, "ch_1");
        Ok(())
    }
}

#[tokio::test]
async fn an_external_step_sends_the_same_idempotency_key_on_every_attempt() {
    // Arrange
    use wiremock::{matchers, Mock, MockServer, ResponseTemplate};
    let provider = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/charges"))
        .and(matchers::header_exists("Idempotency-Key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ch_1"})))
        .expect(2)
        .mount(&provider)
        .await;
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new().register(Charge { api: provider.uri() })).await;

    // Act
    let id = app.engine.start::<Charge>(&json!({})).await.unwrap();
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;

    // Assert
    let keys: Vec<String> = provider
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers.get("Idempotency-Key").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, vec![format!("{id}:charge"), format!("{id}:charge")]);
    let out: serde_json::Value =
        sqlx::query_scalar("select output from engine.run_steps where run_id = $1 and step = 'charge'")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(out, json!("ch_1"), "the provider's id is recorded");
    app.stop().await;
}

// ---- 4. fencing ----

struct Wedged {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Workflow for Wedged {
    const NAME: &'static str = "test.wedged";
    type Input = serde_json::Value;

    async fn run(&self, ctx: &mut RunCtx, _: serde_json::Value) -> Result<(), StepError> {
        let (entered, release) = (self.entered.clone(), self.release.clone());
        ctx.step("slow", |_| async move {
            entered.notify_one();
            release.notified().await;
            Ok(1)
        })
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_stale_worker_cannot_write_after_another_took_the_run_over() {
    // Arrange: an attempt wedged inside a step.
    let db = TestDb::new().await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let flow = Wedged {
        entered: entered.clone(),
        release: release.clone(),
    };
    let app = spawn_app(&db, Registry::new().register(flow)).await;
    let id = app.engine.start::<Wedged>(&json!({})).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), entered.notified()).await.unwrap();

    // Act: another worker claims the run (what a claim after lease expiry does),
    // then the wedged attempt wakes up and tries to checkpoint.
    sqlx::query("update engine.runs set fence = fence + 1, lease_owner = 'other-node' where id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    release.notify_one();
    wait_for("the stale attempt to end", Duration::from_secs(20), || async {
        let outcome: Option<String> =
            sqlx::query_scalar("select outcome from engine.run_attempts where run_id = $1 and fence = 1")
                .bind(id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        outcome
    })
    .await;

    // Assert
    let steps: i64 = sqlx::query_scalar("select count(*) from engine.run_steps where run_id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(steps, 0, "the stale checkpoint was refused");
    let (status, owner): (String, Option<String>) =
        sqlx::query_as("select status::text, lease_owner from engine.runs where id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), owner.as_deref()), ("running", Some("other-node")));
    let outcome: String =
        sqlx::query_scalar("select outcome from engine.run_attempts where run_id = $1 and fence = 1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(outcome, "lost_lease");
    app.stop().await;
}

// ---- 6. typed retries ----

#[derive(Serialize, Deserialize)]
struct FailInput {
    kind: String,
    times: usize,
}

struct Failing {
    calls: Arc<Mutex<Vec<Instant>>>,
    policy: RetryPolicy,
}

impl Workflow for Failing {
    const NAME: &'static str = "test.failing";
    type Input = FailInput;

    fn retry_policy(&self) -> RetryPolicy {
        self.policy.clone()
    }

    async fn run(&self, ctx: &mut RunCtx, input: FailInput) -> Result<(), StepError> {
        let calls = self.calls.clone();
        ctx.step("call", |_| async move {
            let n = {
                let mut c = calls.lock().unwrap();
                c.push(Instant::now());
                c.len()
            };
            if n > input.times {
                return Ok(());
            }
            Err(match input.kind.as_str() {
                "transient" => StepError::transient("HTTP 503 from provider"),
                "rate_limited" => StepError::rate_limited(
                    Utc::now() + chrono::Duration::seconds(2),
                    "HTTP 429 from provider",
                ),
                _ => StepError::permanent("HTTP 400: invalid phone number"),
            })
        })
        .await
    }
}

async fn run_failing(kind: &str, times: usize, policy: RetryPolicy, expect: &str) -> (TestDb, Uuid, Vec<Instant>) {
    let db = TestDb::new().await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = spawn_app(&db, Registry::new().register(Failing { calls: calls.clone(), policy })).await;
    let id = app
        .engine
        .start::<Failing>(&FailInput { kind: kind.into(), times })
        .await
        .unwrap();
    wait_status(&db.pool, id, expect, Duration::from_secs(30)).await;
    app.stop().await;
    let calls = calls.lock().unwrap().clone();
    (db, id, calls)
}

#[tokio::test]
async fn a_transient_error_retries_with_capped_backoff_until_the_policy_is_exhausted() {
    let policy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(2),
        schedule: None,
    };
    let (db, id, calls) = run_failing("transient", 100, policy, "failed").await;

    assert_eq!(calls.len(), 4, "exactly max_attempts executions");
    for gap in calls.windows(2).map(|w| w[1] - w[0]) {
        // ceiling ≤ 2 s, + apalis's whole-second run_at, + poll interval.
        assert!(gap < Duration::from_millis(4_500), "backoff over its cap: {gap:?}");
    }
    let detail = relevo::engine::ops::show(&db.pool, id).await.unwrap();
    assert_eq!(detail.run.last_error_kind.as_deref(), Some("transient"));
    assert_eq!(detail.run.last_error_step.as_deref(), Some("call"));
    assert_eq!(detail.run.last_error_message.as_deref(), Some("HTTP 503 from provider"));
    assert_eq!(detail.run.failures, 4);
}

#[tokio::test]
async fn transient_retries_back_off_instead_of_looping() {
    // apalis re-fetches failed jobs immediately; the engine must not. An exact
    // schedule, because full jitter may legitimately draw a delay near zero
    // (and timers are exact now, no longer rounded up to whole seconds).
    let policy = RetryPolicy::from_schedule(&[Duration::from_millis(600), Duration::from_millis(600)]);
    let (_db, _id, calls) = run_failing("transient", 100, policy, "failed").await;
    assert_eq!(calls.len(), 3);
    for gap in calls.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= Duration::from_millis(590), "a retry came back too fast: {gap:?}");
    }
}

#[tokio::test]
async fn a_rate_limited_step_resumes_at_retry_after_without_burning_an_attempt() {
    // max_attempts 1: any burnt attempt would fail the run.
    let (db, id, calls) = run_failing("rate_limited", 2, quick_policy(1), "succeeded").await;

    assert_eq!(calls.len(), 3, "two 429s then success; no hot loop");
    for gap in calls.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= Duration::from_millis(1_900), "resumed before retry_after: {gap:?}");
    }
    let failures: i32 = sqlx::query_scalar("select failures from engine.runs where id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn a_permanent_error_fails_the_run_at_once() {
    let (db, id, calls) = run_failing("permanent", 100, quick_policy(5), "failed").await;

    assert_eq!(calls.len(), 1);
    let detail = relevo::engine::ops::show(&db.pool, id).await.unwrap();
    assert_eq!(detail.run.last_error_kind.as_deref(), Some("permanent"));
    assert_eq!(detail.run.last_error_step.as_deref(), Some("call"));
}

// ---- 7. per-key ordering ----

#[derive(Serialize, Deserialize)]
struct KeyedInput {
    key: String,
}

type Spans = Arc<Mutex<Vec<(String, Uuid, Instant, Instant)>>>;

/// Steps executing right now, and a signal when that number changes.
type InFlight = Arc<(AtomicUsize, tokio::sync::Notify)>;

struct Keyed(Spans, InFlight);

impl Workflow for Keyed {
    const NAME: &'static str = "test.keyed";
    type Input = KeyedInput;

    fn ordering_key(input: &KeyedInput) -> Option<String> {
        Some(input.key.clone())
    }

    async fn run(&self, ctx: &mut RunCtx, input: KeyedInput) -> Result<(), StepError> {
        let (spans, in_flight) = (self.0.clone(), self.1.clone());
        ctx.step("work", |info| async move {
            let start = Instant::now();
            let (active, changed) = &*in_flight;
            active.fetch_add(1, Ordering::SeqCst);
            changed.notify_waiters();
            // Hold the step until another run is in flight too (it can only be
            // of another key), for at most 200 ms: that is what makes parallelism
            // between keys, and any overlap within a key, observable.
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                loop {
                    let next = changed.notified();
                    tokio::pin!(next);
                    next.as_mut().enable();
                    if active.load(Ordering::SeqCst) >= 2 {
                        return;
                    }
                    next.await;
                }
            })
            .await;
            active.fetch_sub(1, Ordering::SeqCst);
            changed.notify_waiters();
            spans.lock().unwrap().push((input.key, info.run_id, start, Instant::now()));
            Ok(())
        })
        .await
    }
}

#[tokio::test]
async fn runs_of_one_key_never_overlap_and_start_in_creation_order() {
    // Arrange
    let db = TestDb::new().await;
    let spans: Spans = Arc::default();
    let app = spawn_app(&db, Registry::new().register(Keyed(spans.clone(), Arc::default()))).await;

    // Act: 50 runs over 5 keys, created concurrently.
    let starts = (0..50).map(|i| {
        let engine = app.engine.clone();
        tokio::spawn(async move {
            engine
                .start::<Keyed>(&KeyedInput { key: format!("order-{}", i % 5) })
                .await
                .unwrap()
        })
    });
    let ids: Vec<Uuid> = futures::future::join_all(starts).await.into_iter().map(Result::unwrap).collect();
    wait_for("all 50 runs to succeed", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from engine.runs where status = 'succeeded'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 50).then_some(())
    })
    .await;

    // Assert
    let seq: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>("select id, seq from engine.runs")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(seq.len(), ids.len());
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 50, "each run's step ran once");
    for k in 0..5 {
        let key = format!("order-{k}");
        let mut of_key: Vec<_> = spans.iter().filter(|s| s.0 == key).collect();
        of_key.sort_by_key(|s| s.2);
        for pair in of_key.windows(2) {
            assert!(pair[0].3 <= pair[1].2, "runs of {key} overlapped");
            assert!(seq[&pair[0].1] < seq[&pair[1].1], "runs of {key} started out of creation order");
        }
    }
    let overlapping_keys = spans.iter().any(|a| {
        spans.iter().any(|b| a.0 != b.0 && a.2 < b.3 && b.2 < a.3)
    });
    assert!(overlapping_keys, "different keys must run in parallel");
    app.stop().await;
}

// ---- 8. durable timers ----

#[tokio::test]
async fn a_durable_timer_survives_a_restart() {
    // Arrange
    let db = TestDb::new().await;
    let registry = || relevo::workflows::selftest::register(Registry::new());
    let app = spawn_app(&db, registry()).await;
    let input = relevo::workflows::selftest::StepsInput {
        steps: 2,
        pause_ms: 0,
        timer_ms: Some(3_000),
        key: None,
        abort_in_step: None,
        fail_in_step: None,
    };
    let started = Utc::now();
    let id = app.engine.start::<relevo::workflows::selftest::Steps>(&input).await.unwrap();
    wait_status(&db.pool, id, "sleeping", Duration::from_secs(20)).await;

    // Act: the process goes away while the run sleeps; a new one starts.
    app.stop().await;
    let app = spawn_app(&db, registry()).await;
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(30)).await;

    // Assert
    let effects = timed_effects(&db, id).await;
    let names: Vec<&str> = effects.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, vec!["step-1", "after-timer", "step-2"]);
    assert!(effects[1].1 >= started + chrono::Duration::seconds(3), "the timer fired early");
    app.stop().await;
}

#[tokio::test]
async fn a_sub_second_timer_fires_on_time_not_at_the_next_poll() {
    // Arrange: a poll interval and a heartbeat (apalis fetches after each)
    // far longer than the timer, so only the engine's local timer (and a
    // run_at to the microsecond) can wake the run on time.
    let db = TestDb::new().await;
    let mut settings = settings(&db);
    settings.engine.poll_interval = Duration::from_secs(30);
    settings.engine.heartbeat = Duration::from_secs(10);
    let app = spawn_app_with(settings, relevo::workflows::selftest::register(Registry::new())).await;
    let input = relevo::workflows::selftest::StepsInput {
        steps: 1,
        pause_ms: 0,
        timer_ms: Some(300),
        key: None,
        abort_in_step: None,
        fail_in_step: None,
    };

    // Act
    let id = app.engine.start::<relevo::workflows::selftest::Steps>(&input).await.unwrap();

    // Assert: done well before the heartbeat or the poll would allow.
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(8)).await;
    let effects = timed_effects(&db, id).await;
    let waited = effects[1].1 - effects[0].1;
    assert_eq!(effects[1].0, "after-timer");
    assert!(waited >= chrono::Duration::milliseconds(300), "the timer fired early: {waited}");
    // Generous for a loaded machine; without the local timer it is ≥ 10 s.
    assert!(waited < chrono::Duration::milliseconds(2_500), "the timer fired late: {waited}");
    app.stop().await;
}

/// The self-test steps' effects of a run, in order, with when each was written.
async fn timed_effects(db: &TestDb, id: uuid::Uuid) -> Vec<(String, chrono::DateTime<Utc>)> {
    sqlx::query_as("select step, at from selftest.effects where run_id = $1 order by id")
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}
