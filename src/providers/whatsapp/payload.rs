//! WhatsApp events → `Route`. A stored message event (`message.*`) is the
//! message object with its change's `metadata` and `contacts` (see
//! `verify::split`): it becomes `Route::WhatsAppMessage`; a stored status
//! (`status.*`) becomes `Route::WhatsAppStatus`. Other changes are ignored.

use serde_json::Value;

use crate::providers::Route;

pub fn route(kind: &str, payload: &Value) -> Route {
    if kind.starts_with("status.") {
        return status(&payload["item"]);
    }
    if !kind.starts_with("message.") {
        return Route::ignored(format!("no flow handles WhatsApp {kind} events yet"));
    }
    let item = &payload["item"];
    let (Some(wa_id), Some(wamid)) = (item["from"].as_str(), item["id"].as_str()) else {
        return Route::ignored("the WhatsApp message carries no sender (from) or id");
    };
    let message_type = item["type"].as_str().unwrap_or("unknown");
    let text = match message_type {
        "text" => item["text"]["body"].as_str(),
        "button" => item["button"]["text"].as_str(),
        "interactive" => item["interactive"]["button_reply"]["title"]
            .as_str()
            .or_else(|| item["interactive"]["list_reply"]["title"].as_str()),
        _ => None,
    }
    .filter(|t| !t.trim().is_empty())
    .map(str::to_owned);
    let contacts = payload["contacts"].as_array();
    let name = contacts
        .and_then(|cs| cs.iter().find(|c| c["wa_id"].as_str() == Some(wa_id)).or_else(|| cs.first()))
        .and_then(|c| c["profile"]["name"].as_str())
        .map(str::to_owned);
    Route::WhatsAppMessage {
        wa_id: wa_id.to_owned(),
        wamid: wamid.to_owned(),
        kind: message_type.to_owned(),
        text,
        name,
    }
}

fn status(item: &Value) -> Route {
    let (Some(wamid), Some(status)) = (item["id"].as_str(), item["status"].as_str()) else {
        return Route::ignored("the WhatsApp status carries no message id or status");
    };
    let error = &item["errors"][0];
    Route::WhatsAppStatus {
        wamid: wamid.to_owned(),
        status: status.to_owned(),
        recipient: item["recipient_id"].as_str().map(str::to_owned),
        at: item["timestamp"].as_str().and_then(|t| t.parse().ok()).or_else(|| item["timestamp"].as_i64()),
        error_code: error["code"].as_i64(),
        error_message: error["error_data"]["details"]
            .as_str()
            .or_else(|| error["message"].as_str())
            .or_else(|| error["title"].as_str())
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(item: Value) -> Value {
        json!({"entry_id": "1", "field": "messages",
               "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
               "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512345678"}], "item": item})
    }

    #[test]
    fn messages_route_to_the_conversation() {
        let text = stored(json!({"from": "5215512345678", "id": "wamid.A", "timestamp": "1", "type": "text", "text": {"body": "Quiero 2 zapatos"}}));
        assert_eq!(
            route("message.text", &text),
            Route::WhatsAppMessage {
                wa_id: "5215512345678".into(),
                wamid: "wamid.A".into(),
                kind: "text".into(),
                text: Some("Quiero 2 zapatos".into()),
                name: Some("Ana".into()),
            }
        );
        let image = stored(json!({"from": "5215512345678", "id": "wamid.B", "type": "image", "image": {"id": "m1"}}));
        assert!(matches!(route("message.image", &image), Route::WhatsAppMessage { text: None, ref kind, .. } if kind == "image"));
        let button = stored(json!({"from": "5215512345678", "id": "wamid.C", "type": "button", "button": {"payload": "p", "text": "Sí"}}));
        assert!(matches!(route("message.button", &button), Route::WhatsAppMessage { text: Some(ref t), .. } if t == "Sí"));
        assert!(matches!(route("change.account_update", &stored(json!({}))), Route::Ignored { .. }));
        assert!(matches!(route("message.text", &stored(json!({"type": "text"}))), Route::Ignored { .. }));
    }

    #[test]
    fn statuses_route_with_their_time_and_error() {
        let failed = stored(json!({"id": "wamid.S", "status": "failed", "timestamp": "1749416390", "recipient_id": "5215512345678",
            "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                        "error_data": {"details": "Message failed to send because more than 24 hours have passed"}}]}));
        assert_eq!(
            route("status.failed", &failed),
            Route::WhatsAppStatus {
                wamid: "wamid.S".into(),
                status: "failed".into(),
                recipient: Some("5215512345678".into()),
                at: Some(1_749_416_390),
                error_code: Some(131_047),
                error_message: Some("Message failed to send because more than 24 hours have passed".into()),
            }
        );
        let read = stored(json!({"id": "wamid.S", "status": "read", "timestamp": "1749416399", "recipient_id": "5215512345678"}));
        assert!(matches!(route("status.read", &read), Route::WhatsAppStatus { error_code: None, ref status, .. } if status == "read"));
        assert!(matches!(route("status.read", &stored(json!({"status": "read"}))), Route::Ignored { .. }));
    }
}
