//! HighLevel events → `Route`. No flow handles them yet: the appointment sync
//! adds `Route::Appointment` here.

use crate::providers::Route;

pub fn route(kind: &str) -> Route {
    Route::ignored(format!("no flow handles HighLevel {kind} events yet"))
}
