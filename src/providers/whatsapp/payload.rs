//! WhatsApp events → `Route`. No flow handles them yet: the quote-and-reply
//! flow adds `Route::WhatsAppMessage` here.

use crate::providers::Route;

pub fn route(kind: &str) -> Route {
    Route::ignored(format!("no flow handles WhatsApp {kind} events yet"))
}
