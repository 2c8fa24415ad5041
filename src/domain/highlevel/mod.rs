//! HighLevel sub-accounts ("locations"): their sealed tokens and single-flight
//! rotation, the request limiter every node shares, business hours, and the
//! one way to call HighLevel (`api::HighLevel::call`).

pub mod api;
pub mod hours;
pub mod locations;
pub mod rate_limit;
pub mod tokens;
