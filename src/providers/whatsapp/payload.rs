//! WhatsApp events → `Route`. A stored message event (`message.*`) is the
//! message object with its change's `metadata` and `contacts` (see
//! `verify::split`): it becomes `Route::WhatsAppMessage`. Statuses and other
//! changes are not handled yet.

use serde_json::Value;

use crate::providers::Route;

pub fn route(kind: &str, payload: &Value) -> Route {
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
    fn messages_route_to_the_conversation_and_statuses_are_ignored() {
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
        assert!(matches!(route("status.delivered", &stored(json!({"id": "wamid.A", "status": "delivered"}))), Route::Ignored { .. }));
        assert!(matches!(route("message.text", &stored(json!({"type": "text"}))), Route::Ignored { .. }));
    }
}
