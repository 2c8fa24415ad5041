//! `GET /checkout/return?order_id=…&result=paid|cancelled|pending`: where a
//! shopper lands after a payment page when RELEVO_CHECKOUT_RETURN_URL is not
//! set. A short Spanish page that sends them back to the chat; it reads and
//! changes nothing (payment webhooks, not this visit, settle the order).

use std::collections::HashMap;

use poem::{handler, web::{Html, Query}};

#[handler]
pub fn checkout_return(Query(params): Query<HashMap<String, String>>) -> Html<String> {
    let (title, text) = match params.get("result").map(String::as_str) {
        Some("paid") => ("¡Gracias por tu compra!", "Estamos confirmando tu pago; te avisaremos por WhatsApp en cuanto esté listo."),
        Some("pending") => ("Pago pendiente", "Tu pago está en proceso; te avisaremos por WhatsApp cuando se acredite."),
        _ => ("El pago no se completó", "Puedes volver a WhatsApp y usar el mismo enlace mientras siga vigente."),
    };
    Html(format!(
        "<!doctype html><html lang=\"es\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto\">\
         <h1>{title}</h1><p>{text}</p><p>Ya puedes cerrar esta página y volver a WhatsApp.</p></body></html>"
    ))
}
