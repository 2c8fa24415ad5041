//! Guarantees 5 and 10 with the real `relevo` binary: SIGKILL between steps,
//! a run that keeps killing its process, and two nodes on one database.

use std::{process::Stdio, time::Duration};


use relevo::{engine::Registry, workflows::selftest};
use serde_json::json;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::helpers::*;

/// Starts `relevo serve` on `db` with fast engine timings and the self-test flows.
fn start_node(db: &TestDb) -> Child {
    start_node_with(db, 0, &[])
}

pub(crate) fn start_node_with(db: &TestDb, port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_relevo"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("DATABASE_URL", &db.url)
        .env("RELEVO_ADDR", format!("127.0.0.1:{port}"))
        .env("RELEVO_ADMIN_TOKEN", TOKEN)
        .env("RELEVO_ENABLE_TEST_WORKFLOWS", "1")
        .env("RELEVO_LEASE_SECS", "2")
        .env("RELEVO_HEARTBEAT_SECS", "1")
        .env("RELEVO_MISSED_HEARTBEATS", "2")
        .env("RELEVO_POLL_MS", "200")
        .env("RELEVO_SECRET_KEY", SECRET_KEY)
        .env("RELEVO_DB_POOL_SIZE", "20")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("relevo binary starts")
}

fn engine(db: &TestDb) -> relevo::engine::Engine {
    relevo::engine::Engine::new(db.pool.clone(), selftest::register(Registry::new()), fast_engine())
}

async fn start_run(db: &TestDb, input: serde_json::Value) -> Uuid {
    let mut tx = db.pool.begin().await.unwrap();
    let id = engine(db).start_by_name_using(&mut tx, "selftest.steps", &input, None).await.unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn a_run_killed_between_two_steps_resumes_and_runs_each_step_once() {
    // Arrange
    let db = TestDb::new().await;
    let mut node = start_node(&db);
    let id = start_run(&db, json!({"steps": 3, "pause_ms": 3000})).await;
    // Wait for step-1's checkpoint, not just its effect: a kill between the two
    // would legitimately re-run the (at-least-once) step.
    wait_for("step-1 to be checkpointed", Duration::from_secs(30), || async {
        let done: bool = sqlx::query_scalar(
            "select exists(select 1 from engine.run_steps where run_id = $1 and step = 'step-1' and status = 'completed')",
        )
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        done.then_some(())
    })
    .await;
    assert_eq!(effects(&db, id).await, ["step-1"], "killed between step-1 and step-2");

    // Act: SIGKILL while the run pauses between step-1 and step-2, then restart.
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    assert_eq!(run_status(&db.pool, id).await, "running", "killed mid-run");
    let mut node = start_node(&db);
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(60)).await;

    // Assert
    assert_eq!(effects(&db, id).await, vec!["step-1", "step-2", "step-3"]);
    let outcomes: Vec<Option<String>> =
        sqlx::query_scalar("select outcome from engine.run_attempts where run_id = $1 order by fence")
            .bind(id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, vec![Some("crashed".into()), Some("succeeded".into())]);
    node.start_kill().unwrap();
}

#[tokio::test]
async fn a_run_that_keeps_killing_its_process_fails_after_max_attempts() {
    // apalis re-enqueues orphaned jobs without checking max_attempts: without
    // the engine's crash count this run would kill every restart forever.
    let db = TestDb::new().await;
    let id = start_run(&db, json!({"steps": 2, "abort_in_step": 1})).await;

    let mut deaths = 0;
    while run_status(&db.pool, id).await != "failed" {
        assert!(deaths <= 3, "more process deaths than the policy's 3 attempts");
        let mut node = start_node(&db);
        let exited = wait_for("the node to crash or fail the run", Duration::from_secs(30), || {
            let status = node.try_wait().unwrap();
            let pool = db.pool.clone();
            async move {
                match status {
                    Some(s) => Some(Some(s)),
                    None => (run_status(&pool, id).await == "failed").then_some(None),
                }
            }
        })
        .await;
        match exited {
            Some(_) => deaths += 1,
            None => node.start_kill().unwrap(),
        }
    }

    assert_eq!(deaths, 3);
    assert_eq!(effects(&db, id).await.len(), 3, "the poison step ran once per allowed attempt");
    let detail = relevo::engine::ops::show(&db.pool, id).await.unwrap();
    assert_eq!(detail.run.last_error_kind.as_deref(), Some("crashed"));
}

#[tokio::test]
async fn two_nodes_on_one_database_execute_each_of_1000_runs_once() {
    // Arrange
    let db = TestDb::new().await;
    let mut a = start_node(&db);
    let mut b = start_node(&db);
    let engine = engine(&db);

    // Act
    let mut tx = db.pool.begin().await.unwrap();
    for _ in 0..1000 {
        engine
            .start_by_name_using(&mut tx, "selftest.steps", &json!({"steps": 2}), None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    wait_for("1000 runs to succeed", Duration::from_secs(180), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from engine.runs where status = 'succeeded'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 1000).then_some(())
    })
    .await;

    // Assert
    let (runs, effects, attempts, workers): (i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from engine.runs),
                (select count(*) from selftest.effects),
                (select count(*) from engine.run_attempts),
                (select count(distinct worker) from engine.run_attempts)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((runs, effects, attempts), (1000, 2000, 1000), "every step body ran exactly once");
    assert_eq!(workers, 2, "both nodes took work");
    let doubled: i64 = sqlx::query_scalar(
        "select count(*) from (select run_id, step from selftest.effects group by 1, 2 having count(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(doubled, 0);
    a.start_kill().unwrap();
    b.start_kill().unwrap();
}

#[tokio::test]
async fn a_fulfilment_batch_killed_midway_ends_with_no_double_decrement_or_email() {
    use relevo::domain::{catalog, orders};
    const SECRET: &str = "whsec_crash";
    let db = TestDb::new().await;
    let product = catalog::NewProduct::parse("CAL-001", "Calcetines", &[], 599, "MXN", 10_000).unwrap();
    catalog::insert(&db.pool, &product).await.unwrap();
    let mut ids = vec![];
    let mut sold = 0;
    for i in 0..150 {
        let qty = 1 + (i % 3) as i64;
        let new = orders::NewOrder::parse(Some("ana@example.mx"), "Ana", None, &[("CAL-001".into(), qty)]).unwrap();
        let order = orders::create(&db.pool, &new).await.unwrap();
        ids.push((order.order.id, order.order.amount_minor));
        sold += qty;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Few workers, so the batch is still running when the process dies.
    let slow = [("STRIPE_WEBHOOK_SECRET", SECRET), ("RELEVO_WORKER_CONCURRENCY", "2"), ("RELEVO_WORKER_BATCH", "2")];
    let mut node = start_node_with(&db, port, &slow);
    let client = reqwest::Client::new();
    wait_ready(port).await;
    for (i, (id, amount)) in ids.iter().enumerate() {
        let body = json!({"id": format!("evt_{i}"), "type": "payment_intent.succeeded", "data": {"object": {
            "object": "payment_intent", "id": format!("pi_{i}"), "amount": amount, "currency": "mxn",
            "metadata": {"order_id": id.to_string()}}}})
        .to_string();
        let sig = relevo::providers::stripe::verify::sign(SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
        let resp = client
            .post(format!("http://127.0.0.1:{port}/webhooks/stripe"))
            .header("Stripe-Signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let fulfilled = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from orders where status = 'fulfilled'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    wait_for("the batch to be under way", Duration::from_secs(60), || async { (fulfilled().await >= 10).then_some(()) }).await;

    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let at_kill = fulfilled().await;
    assert!(at_kill < 150, "the batch finished before the kill ({at_kill})");
    let mut node = start_node_with(&db, port, &[("STRIPE_WEBHOOK_SECRET", SECRET)]);
    wait_for("all 150 orders to be fulfilled", Duration::from_secs(120), || async { (fulfilled().await == 150).then_some(()) }).await;

    let (stock, sales, emails, fulfilments): (i32, i64, i64, i64) = sqlx::query_as(
        "select (select stock from products where sku = 'CAL-001'),
                (select count(*) from stock_movements where reason = 'sale'),
                (select count(*) from emails where kind = 'order_confirmation'),
                (select count(*) from order_transitions where signal = 'fulfilment')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stock as i64, 10_000 - sold, "no double decrement");
    assert_eq!((sales, emails, fulfilments), (150, 150, 150), "each order fulfilled and mailed once");
    node.start_kill().unwrap();
}

/// Records the `webhook-id` of every request, answering 200 after a short delay.
struct SlowReceiver(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl wiremock::Respond for SlowReceiver {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let id = req.headers.get("webhook-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        self.0.lock().unwrap().push(id);
        wiremock::ResponseTemplate::new(200).set_delay(Duration::from_millis(150))
    }
}

#[tokio::test]
async fn deliveries_cut_by_a_kill_all_end_delivered_and_a_deduping_receiver_sees_each_event_once() {
    let db = TestDb::new().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(SlowReceiver(seen.clone()))
        .mount(&receiver)
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = [
        ("RELEVO_OUTBOUND_ALLOW_NETS", "127.0.0.0/8"),
        ("RELEVO_OUTBOUND_TIMEOUT", "2s"),
        ("RELEVO_OUTBOUND_LEASE", "3s"),
        ("RELEVO_OUTBOUND_CONCURRENCY", "2"),
    ];
    let mut node = start_node_with(&db, port, &env);
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    wait_ready(port).await;
    let resp = client
        .post(format!("{api}/subscriptions"))
        .bearer_auth(TOKEN)
        .json(&json!({"url": format!("{}/hook", receiver.uri()), "event_types": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut events = std::collections::HashSet::new();
    for i in 0..30 {
        let e: serde_json::Value = client
            .post(format!("{api}/outbound-events"))
            .bearer_auth(TOKEN)
            .json(&json!({"type": "stock.low", "payload": {"i": i}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        events.insert(e["id"].as_str().unwrap().to_owned());
    }
    wait_for("deliveries to be under way", Duration::from_secs(30), || async { (seen.lock().unwrap().len() >= 5).then_some(()) }).await;

    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let before_restart = seen.lock().unwrap().len();
    assert!(before_restart < 30, "all deliveries finished before the kill");
    let mut node = start_node_with(&db, port, &env);
    wait_for("all 30 deliveries to be delivered", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from deliveries where status = 'delivered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 30).then_some(())
    })
    .await;

    let unique: std::collections::HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    assert_eq!(unique, events, "after deduplication on webhook-id the receiver has every event exactly once");
    node.start_kill().unwrap();
}

#[tokio::test]
async fn a_whatsapp_reply_cut_by_a_kill_after_the_quote_is_sent_once_after_restart() {
    use crate::whatsapp::*;
    // Arrange: Meta holds the first reply without answering (the process dies
    // before it knows whether the send went through), then answers at once.
    let api = graph_api_answering_first(1, wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(120))).await;
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = api.uri();
    let env = [
        ("WHATSAPP_APP_SECRET", APP_SECRET),
        ("WHATSAPP_API_BASE", base.as_str()),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_ID),
        ("WHATSAPP_ACCESS_TOKEN", TOKEN_WA),
        ("WHATSAPP_SEND_RETRY_SCHEDULE", "1s"),
    ];
    let mut node = start_node_with(&db, port, &env);
    wait_ready(port).await;
    let client = reqwest::Client::new();
    add_zapatos(&client, port).await;
    say_to(&client, port, "wamid.CRASH", "Quiero 2 zapatos").await;
    wait_for("the reply to reach Meta", Duration::from_secs(30), || async { (!texts(&bodies(&api).await).is_empty()).then_some(()) }).await;

    // Act: SIGKILL between understanding (checkpointed) and a confirmed send, then restart.
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let run = conversation_run(&db, "wamid.CRASH").await;
    assert_eq!(run_status(&db.pool, run).await, "running", "killed mid-send");
    let mut node = start_node_with(&db, port, &env);
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(60)).await;

    // Assert: understood and read once; the reply that Meta accepted, once.
    assert_eq!(quote_rows(&db).await, vec![("wamid.CRASH".into(), "open".into(), 9198, "MXN".into())]);
    let bodies = bodies(&api).await;
    assert_eq!(reads(&bodies).len(), 1, "mark_read was checkpointed before the kill");
    let texts = texts(&bodies);
    assert_eq!(texts.len(), 2, "the held send and the one after restart: {bodies:?}");
    assert_eq!(texts[0], texts[1], "the same reply");
    let log: Vec<(String, String, i32)> =
        sqlx::query_as("select direction, status, attempts from whatsapp_messages order by id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(log, vec![("inbound".into(), "received".into(), 0), ("outbound".into(), "sent".into(), 1)]);
    let outcomes: Vec<Option<String>> = sqlx::query_scalar("select outcome from engine.run_attempts where run_id = $1 order by fence")
        .bind(run)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(outcomes, vec![Some("crashed".into()), Some("succeeded".into())]);
    node.start_kill().unwrap();
}

#[tokio::test]
async fn a_kill_between_creating_the_checkout_session_and_its_checkpoint_reuses_the_session() {
    use crate::{provider_mocks::*, whatsapp::*};
    // Arrange: a node with WhatsApp and Stripe mocks, an open quote.
    let api = wiremock::MockServer::start().await;
    mount_defaults(&api).await;
    mount_text_ok(&api).await;
    let stripe_api = StripeApi::start().await;
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (wa_base, stripe_base) = (api.uri(), stripe_api.uri());
    let env = [
        ("WHATSAPP_APP_SECRET", APP_SECRET),
        ("WHATSAPP_API_BASE", wa_base.as_str()),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_ID),
        ("WHATSAPP_ACCESS_TOKEN", TOKEN_WA),
        ("STRIPE_API_KEY", STRIPE_KEY),
        ("STRIPE_API_BASE", stripe_base.as_str()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_e2e"),
        ("RELEVO_OUTBOUND_ALLOW_NETS", "127.0.0.0/8"),
    ];
    // A subscriber to every domain event.
    let subscriber = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&subscriber)
        .await;
    let mut node = start_node_with(&db, port, &env);
    wait_ready(port).await;
    let client = reqwest::Client::new();
    add_zapatos(&client, port).await;
    let resp = client
        .post(format!("http://127.0.0.1:{port}/api/v1/subscriptions"))
        .bearer_auth(TOKEN)
        .json(&json!({"url": format!("{}/hooks", subscriber.uri()), "event_types": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    say_to(&client, port, "wamid.K1", "Quiero 2 zapatos").await;
    let quoted = conversation_run(&db, "wamid.K1").await;
    wait_status(&db.pool, quoted, "succeeded", Duration::from_secs(30)).await;

    // Act: Stripe creates the session but the answer never arrives: SIGKILL, restart.
    stripe_api.hold_next(Duration::from_secs(120));
    say_to(&client, port, "wamid.K2", "sí").await;
    wait_for("Stripe to create the session", Duration::from_secs(30), || async { (stripe_api.requests() == 1).then_some(()) }).await;
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let run = conversation_run(&db, "wamid.K2").await;
    assert_eq!(run_status(&db.pool, run).await, "running", "killed before the checkpoint");
    let mut node = start_node_with(&db, port, &env);
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(60)).await;

    // Assert: the retry replayed the key: one session, one order, its link sent once.
    assert_eq!(stripe_api.requests(), 2);
    let sessions = stripe_api.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, "cs_test_1");
    let orders: Vec<(uuid::Uuid, i64)> = sqlx::query_as("select id, amount_minor from orders").fetch_all(&db.pool).await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(sessions[0].form["metadata[order_id]"], orders[0].0.to_string());
    let links: Vec<String> = sqlx::query_scalar("select provider_id from payment_links").fetch_all(&db.pool).await.unwrap();
    assert_eq!(links, vec!["cs_test_1"]);
    let link_messages = texts(&bodies(&api).await).into_iter().filter(|b| b["text"]["body"].as_str().unwrap().contains("cs_test_1")).count();
    assert_eq!(link_messages, 1);

    // Act: Stripe says the session was paid (twice, as it may).
    let order_id = orders[0].0;
    let event = json!({"id": "evt_e2e", "object": "event", "type": "checkout.session.completed", "created": 1750000000,
        "data": {"object": {"object": "checkout.session", "id": "cs_test_1", "payment_status": "paid", "amount_total": orders[0].1,
                            "currency": "mxn", "payment_intent": "pi_e2e", "metadata": {"order_id": order_id.to_string()}}}});
    for _ in 0..2 {
        let body = event.to_string();
        let resp = client
            .post(format!("http://127.0.0.1:{port}/webhooks/stripe"))
            .header("Stripe-Signature", relevo::providers::stripe::verify::sign("whsec_e2e", chrono::Utc::now().timestamp(), body.as_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // Assert: fulfilled, stock taken once, the confirmation in the chat once,
    // and the subscriber saw the loop's domain events.
    let confirmations = || async {
        texts(&bodies(&api).await).into_iter().filter(|b| b["text"]["body"].as_str().unwrap().contains("Pago recibido")).count()
    };
    wait_for("the confirmation in the chat", Duration::from_secs(30), || async { (confirmations().await == 1).then_some(()) }).await;
    let (status, stock): (String, i32) =
        sqlx::query_as("select (select status::text from orders), (select stock from products where sku = 'ZAP-001')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), stock), ("fulfilled", 8));
    let seen = wait_for("the subscriber to get the loop's events", Duration::from_secs(30), || async {
        let types: std::collections::BTreeSet<String> = subscriber
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .filter_map(|b| b["type"].as_str().map(str::to_owned))
            .collect();
        let wanted = ["customer.created", "sales_order.created", "payment.received", "sales_order.confirmed"];
        wanted.iter().all(|w| types.contains(*w)).then_some(types)
    })
    .await;
    assert!(!seen.contains("sales_order.cancelled"), "{seen:?}");
    // Both deliveries of the event have been routed and handled: no run is left to act.
    wait_for("every run to settle", Duration::from_secs(30), || async {
        let active: i64 =
            sqlx::query_scalar("select count(*) from engine.runs where status in ('pending', 'running', 'sleeping')")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        (active == 0).then_some(())
    })
    .await;
    let notices: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'whatsapp_notice'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((notices, confirmations().await), (1, 1), "the redelivered event sent nothing more");
    node.start_kill().unwrap();
}

/// Adds the product ZAP-001 (10 in stock, $45.99) through the node's API.
async fn add_zapatos(client: &reqwest::Client, port: u16) {
    let resp = client
        .post(format!("http://127.0.0.1:{port}/api/v1/products"))
        .bearer_auth(TOKEN)
        .json(&json!({"sku": "ZAP-001", "name": "Zapatos", "price_minor": 4599, "currency": "MXN", "stock": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

/// The test shopper writes `text` (message `wamid`): a signed webhook to the node.
async fn say_to(client: &reqwest::Client, port: u16, wamid: &str, text: &str) {
    let body = crate::whatsapp::message_body(wamid, text);
    let resp = client
        .post(format!("http://127.0.0.1:{port}/webhooks/whatsapp"))
        .header("X-Hub-Signature-256", relevo::providers::whatsapp::verify::sign(crate::whatsapp::APP_SECRET, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_kill_between_creating_an_appointment_in_highlevel_and_its_checkpoint_books_it_once() {
    use crate::highlevel_mock::{self as mock, HighLevelApi};
    // Arrange: a node connected to the HighLevel mock.
    let api = HighLevelApi::start().await;
    api.add_calendar("loc-k", "cal-k", "Dental", "America/Lima");
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = api.uri();
    let env = [
        ("HIGHLEVEL_API_BASE", base.as_str()),
        ("HIGHLEVEL_CLIENT_ID", mock::CLIENT_ID),
        ("HIGHLEVEL_CLIENT_SECRET", mock::CLIENT_SECRET),
    ];
    let mut node = start_node_with(&db, port, &env);
    wait_ready(port).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    crate::highlevel::connect_over_http(&client, port, &api, "loc-k").await;

    // Act: HighLevel books the appointment but its answer never arrives: SIGKILL, restart.
    api.hold_next_create(Duration::from_secs(120));
    let resp = client
        .post(url("/api/v1/appointments"))
        .bearer_auth(TOKEN)
        .json(&json!({"location_id": "loc-k", "calendar_id": "cal-k", "contact_id": "c-1", "title": "Consulta",
                      "start_time": "2026-12-21T10:00:00-05:00", "end_time": "2026-12-21T10:30:00-05:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    wait_for("HighLevel to book it", Duration::from_secs(30), || async { (api.events("loc-k").len() == 1).then_some(()) }).await;
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let _node = start_node_with(&db, port, &env);
    wait_ready(port).await;
    let synced = wait_for("the appointment to be synced after the restart", Duration::from_secs(60), || async {
        let a: serde_json::Value =
            client.get(url(&format!("/api/v1/appointments/{id}"))).bearer_auth(TOKEN).send().await.ok()?.json().await.ok()?;
        (a["sync"] == "synced").then_some(a)
    })
    .await;

    // Assert: the retry looked the slot up and adopted the booking: one appointment in HighLevel.
    assert_eq!(api.events("loc-k").len(), 1);
    assert_eq!(api.create_requests(), 1, "the create was not sent again");
    assert!(api.requests().iter().any(|r| r.path == "/calendars/events" && r.method == "GET"));
    assert_eq!(synced["ghl_appointment_id"], api.events("loc-k")[0]["id"]);
}

#[tokio::test]
async fn kills_in_the_middle_of_batched_claims_and_finishes_leave_every_step_done_once() {
    // Arrange: 1,500 unkeyed runs of three database steps: claims and
    // successes go through the group-commit batchers.
    let db = TestDb::new().await;
    let engine = engine(&db);
    let mut tx = db.pool.begin().await.unwrap();
    for _ in 0..1500 {
        engine.start_by_name_using(&mut tx, "selftest.bench", &json!({}), None).await.unwrap();
    }
    tx.commit().await.unwrap();
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from engine.runs where status = 'succeeded'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };

    // Act: SIGKILL the node twice while batches are in flight, then let a
    // fresh node finish.
    for threshold in [200, 700] {
        let mut node = start_node(&db);
        wait_for("runs to be under way", Duration::from_secs(60), || async {
            (succeeded().await >= threshold).then_some(())
        })
        .await;
        node.start_kill().unwrap();
        node.wait().await.unwrap();
    }
    let in_flight: i64 = sqlx::query_scalar("select count(*) from engine.runs where status = 'running'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let mut node = start_node(&db);
    wait_for("every run to succeed", Duration::from_secs(120), || async {
        (succeeded().await == 1500).then_some(())
    })
    .await;

    // Assert: each step's effect exactly once, no attempt left open.
    let (effects, doubled, open): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from selftest.effects),
                (select count(*) from (select run_id, step from selftest.effects group by 1, 2 having count(*) > 1) d),
                (select count(*) from engine.run_attempts where finished_at is null)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(effects, 4500, "three effects per run");
    assert_eq!(doubled, 0, "no step ran twice");
    assert_eq!(open, 0, "every attempt was closed");
    assert!(in_flight > 0, "the kills caught runs mid-flight");
    node.start_kill().unwrap();
}
