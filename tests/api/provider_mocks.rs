//! Stripe's and Mercado Pago's payment-link APIs as local servers that check
//! requests as the real ones do (`../shared/providers.md` §1.2, §2): Stripe
//! takes only form-encoded POSTs with `Bearer sk_…`, stores each
//! `Idempotency-Key`'s answer and replays it, and refuses a reused key with
//! other parameters (400 `idempotency_error`); Mercado Pago requires Bearer and
//! `X-Idempotency-Key` on every POST.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};
use wiremock::{matchers, Mock, MockServer, Request, Respond, ResponseTemplate};

pub const STRIPE_KEY: &str = "sk_test_relevo";
pub const MP_TOKEN: &str = "APP_USR-relevo-test";

/// A Checkout Session the mock created.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    /// The form's fields (for a repeated key such as `payment_method_types[]`, the last value).
    pub form: HashMap<String, String>,
    /// The form as sent, repeated keys included.
    pub pairs: Vec<(String, String)>,
}

/// A stored answer: the request's form, then the status and body answered.
type Saved = (Vec<(String, String)>, u16, Value);

#[derive(Default)]
struct StripeState {
    /// Idempotency-Key → what the first request with it got.
    replays: HashMap<String, Saved>,
    sessions: Vec<Session>,
    requests: usize,
    /// Answer the first N session requests with this (status, body).
    failures: Vec<(u16, Value)>,
    /// Hold the next answer this long after creating the session.
    hold: Option<Duration>,
}

#[derive(Clone)]
pub struct StripeApi {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<StripeState>>,
}

impl StripeApi {
    pub async fn start() -> Self {
        let server = Arc::new(MockServer::start().await);
        let state = Arc::new(Mutex::new(StripeState::default()));
        Mock::given(matchers::method("POST"))
            .and(matchers::path("/v1/checkout/sessions"))
            .respond_with(Checkout(state.clone()))
            .mount(&server)
            .await;
        Mock::given(matchers::any())
            .respond_with(stripe_error(404, "invalid_request_error", "Unrecognized request URL"))
            .with_priority(10)
            .mount(&server)
            .await;
        Self { server, state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Sessions created (replays excluded).
    pub fn sessions(&self) -> Vec<Session> {
        self.state.lock().unwrap().sessions.clone()
    }

    /// Session requests received (replays included).
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// The next session requests fail with these answers, in order.
    pub fn fail_next(&self, answers: Vec<(u16, Value)>) {
        self.state.lock().unwrap().failures = answers;
    }

    /// The next session is created at once but answered only after `hold`.
    pub fn hold_next(&self, hold: Duration) {
        self.state.lock().unwrap().hold = Some(hold);
    }
}

pub fn stripe_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"type": kind, "message": message}}))
}

struct Checkout(Arc<Mutex<StripeState>>);

impl Respond for Checkout {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        state.requests += 1;
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if !header("authorization").is_some_and(|a| a.starts_with("Bearer sk_") && a == format!("Bearer {STRIPE_KEY}")) {
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided");
        }
        if !header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            return stripe_error(400, "invalid_request_error", "Stripe takes form-encoded bodies");
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
        let key = header("idempotency-key");
        if let Some(key) = &key {
            if key.len() > 255 {
                return stripe_error(400, "invalid_request_error", "Idempotency-Key longer than 255 characters");
            }
            if let Some((form, status, body)) = state.replays.get(key) {
                if *form != pairs {
                    return stripe_error(400, "idempotency_error", "Keys for idempotent requests can only be used with the same parameters they were first used with.");
                }
                return ResponseTemplate::new(*status).set_body_json(body.clone()).insert_header("Idempotent-Replayed", "true");
            }
        }
        if !state.failures.is_empty() {
            let (status, body) = state.failures.remove(0);
            return ResponseTemplate::new(status).set_body_json(body);
        }
        let form: HashMap<String, String> = pairs.iter().cloned().collect();
        let missing = ["mode", "success_url", "line_items[0][price_data][currency]", "line_items[0][price_data][unit_amount]",
            "line_items[0][price_data][product_data][name]", "line_items[0][quantity]", "metadata[order_id]",
            "payment_intent_data[metadata][order_id]", "payment_method_types[]"]
            .into_iter()
            .find(|k| !form.contains_key(*k));
        if let Some(param) = missing {
            return stripe_error(400, "invalid_request_error", &format!("Missing required param: {param}."));
        }
        if form["mode"] != "payment" {
            return stripe_error(400, "invalid_request_error", "mode must be payment");
        }
        let mut amount_total = 0i64;
        for i in 0.. {
            let (Some(amount), Some(quantity)) = (
                form.get(&format!("line_items[{i}][price_data][unit_amount]")),
                form.get(&format!("line_items[{i}][quantity]")),
            ) else {
                break;
            };
            let (Ok(amount), Ok(quantity)) = (amount.parse::<i64>(), quantity.parse::<i64>()) else {
                return stripe_error(400, "invalid_request_error", "Invalid integer");
            };
            amount_total += amount * quantity;
        }
        let id = format!("cs_test_{}", state.sessions.len() + 1);
        let body = json!({"id": id, "object": "checkout.session", "mode": "payment", "status": "open",
            "url": format!("https://checkout.stripe.com/c/pay/{id}"), "amount_total": amount_total,
            "currency": form["line_items[0][price_data][currency]"],
            "expires_at": form.get("expires_at").and_then(|t| t.parse::<i64>().ok()).unwrap_or(1_900_000_000),
            "metadata": {"order_id": form["metadata[order_id]"]}});
        state.sessions.push(Session { id, form, pairs: pairs.clone() });
        if let Some(key) = key {
            state.replays.insert(key, (pairs, 200, body.clone()));
        }
        let answer = ResponseTemplate::new(200).set_body_json(body);
        match state.hold.take() {
            Some(hold) => answer.set_delay(hold),
            None => answer,
        }
    }
}

/// Mercado Pago's `POST /checkout/preferences`.
#[derive(Clone)]
pub struct MercadoPagoApi {
    pub server: Arc<MockServer>,
    preferences: Arc<Mutex<Vec<(String, Value)>>>,
}

impl MercadoPagoApi {
    pub async fn start() -> Self {
        let server = Arc::new(MockServer::start().await);
        let preferences = Arc::new(Mutex::new(Vec::new()));
        Mock::given(matchers::method("POST"))
            .and(matchers::path("/checkout/preferences"))
            .respond_with(Preferences(preferences.clone()))
            .mount(&server)
            .await;
        Self { server, preferences }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// (X-Idempotency-Key, body) of each preference created.
    pub fn preferences(&self) -> Vec<(String, Value)> {
        self.preferences.lock().unwrap().clone()
    }
}

struct Preferences(Arc<Mutex<Vec<(String, Value)>>>);

impl Respond for Preferences {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let refuse = |status: u16, message: &str| {
            ResponseTemplate::new(status).set_body_json(json!({"message": message, "error": "bad_request", "status": status, "cause": []}))
        };
        if header("authorization").as_deref() != Some(&format!("Bearer {MP_TOKEN}")) {
            return refuse(401, "invalid access token");
        }
        let Some(key) = header("x-idempotency-key") else { return refuse(400, "X-Idempotency-Key is required") };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else { return refuse(400, "invalid JSON") };
        let items_ok = body["items"].as_array().is_some_and(|items| {
            !items.is_empty()
                && items.iter().all(|i| i["title"].is_string() && i["quantity"].as_i64().is_some_and(|q| q > 0) && i["unit_price"].is_number())
        });
        if !items_ok || !body["external_reference"].is_string() {
            return refuse(400, "items and external_reference are required");
        }
        let mut preferences = self.0.lock().unwrap();
        let n = match preferences.iter().position(|(k, _)| *k == key) {
            Some(i) => i + 1,
            None => {
                preferences.push((key, body.clone()));
                preferences.len()
            }
        };
        let id = format!("123456-pref-{n}");
        ResponseTemplate::new(201).set_body_json(json!({"id": id, "init_point": format!("https://www.mercadopago.com.mx/checkout/v1/redirect?pref_id={id}"),
            "external_reference": body["external_reference"], "expiration_date_to": body["expiration_date_to"]}))
    }
}
