//! The request limiter every node shares, in Postgres (`highlevel_rate_take`,
//! one statement): requests of one location are spaced `RateLimit::spacing()`
//! apart, so all processes together stay under `HIGHLEVEL_RATE_LIMIT`. A caller
//! reserves the next slot when it is at most `MAX_WAIT` away and sleeps until
//! it; further out, nothing is reserved and the run comes back later.
//! HighLevel's own counters (`X-RateLimit-*`) are kept beside the slots, and a
//! 429 pauses the location until the interval HighLevel names has passed.

use std::time::Duration;

use sqlx::PgPool;

use crate::{config::RateLimit, providers::highlevel::client::Limits};

/// The longest a call waits in-process for its slot.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

pub enum Slot {
    /// Reserved: send after this wait.
    Reserved(Duration),
    /// Nothing reserved: try again after this long.
    Full(Duration),
}

pub async fn take(pool: &PgPool, location: &str, limit: RateLimit) -> sqlx::Result<Slot> {
    let row = sqlx::query!(
        r#"select granted as "granted!", extract(epoch from wait_for)::float8 as "wait!"
             from highlevel_rate_take($1, make_interval(secs => $2), make_interval(secs => $3))"#,
        location,
        limit.spacing().as_secs_f64(),
        MAX_WAIT.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    let wait = Duration::from_secs_f64(row.wait.max(0.0));
    Ok(if row.granted { Slot::Reserved(wait) } else { Slot::Full(wait) })
}

/// When a run refused a slot comes back: `wait` is the earliest moment one
/// slot frees up, and every waiting run hears the same `wait`. Coming back
/// together, all but one would be refused again, round after round; spread
/// over the reservation window instead, they come back about as fast as
/// slots free up.
pub fn spread(wait: Duration) -> Duration {
    wait + MAX_WAIT.mul_f64(rand::random::<f64>())
}

/// HighLevel answered 429: nothing goes out for the location before `for_ms`
/// from now, not even requests whose slot was already reserved.
pub async fn pause(pool: &PgPool, location: &str, for_ms: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into highlevel_rate_limits as r (location_id, next_slot_at, paused_until)
         values ($1, clock_timestamp() + make_interval(secs => $2), clock_timestamp() + make_interval(secs => $2))
         on conflict (location_id) do update
            set next_slot_at = greatest(r.next_slot_at, excluded.next_slot_at),
                paused_until = greatest(r.paused_until, excluded.paused_until)",
        location,
        for_ms as f64 / 1000.0,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// How long the location stays paused by a 429, if it is (checked by a call
/// that waited for its slot, since the pause may have come meanwhile).
pub async fn paused_for(pool: &PgPool, location: &str) -> sqlx::Result<Option<Duration>> {
    let secs = sqlx::query_scalar!(
        "select extract(epoch from paused_until - clock_timestamp())::float8 from highlevel_rate_limits
          where location_id = $1 and paused_until > clock_timestamp()",
        location
    )
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Keeps HighLevel's counters from an answer, for ops and the gauge.
pub async fn observe(pool: &PgPool, location: &str, limits: &Limits) -> sqlx::Result<()> {
    if limits.remaining.is_none() && limits.daily_remaining.is_none() {
        return Ok(());
    }
    let int = |v: Option<i64>| v.and_then(|v| i32::try_from(v).ok());
    sqlx::query!(
        "insert into highlevel_rate_limits as r (location_id, remaining, interval_ms, daily_remaining, observed_at)
         values ($1, $2, $3, $4, now())
         on conflict (location_id) do update
            set remaining = excluded.remaining, interval_ms = coalesce(excluded.interval_ms, r.interval_ms),
                daily_remaining = coalesce(excluded.daily_remaining, r.daily_remaining), observed_at = now()",
        location,
        int(limits.remaining),
        int(limits.interval_ms),
        int(limits.daily_remaining),
    )
    .execute(pool)
    .await?;
    Ok(())
}
