//! HighLevel events → `Route`. `AppointmentCreate|Update|Delete` carry the
//! appointment as HighLevel holds it (`../shared/providers.md` §4.2); other
//! event types are stored and ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::Route;

/// What happened to a HighLevel appointment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

/// An appointment as a HighLevel webhook carries it. Part of a durable route:
/// add fields with defaults, never rename one. Times stay as HighLevel wrote
/// them (RFC 3339 with offset); the flow parses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: String,
    pub calendar_id: Option<String>,
    pub contact_id: Option<String>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub status: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub date_updated: Option<String>,
}

pub fn route(kind: &str, payload: &Value) -> Route {
    let change = match kind {
        "AppointmentCreate" => Change::Created,
        "AppointmentUpdate" => Change::Updated,
        "AppointmentDelete" => Change::Deleted,
        other => return Route::ignored(format!("no flow handles HighLevel {other} events")),
    };
    let a = &payload["appointment"];
    let text = |k: &str| a[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(id), Some(location_id)) = (text("id"), payload["locationId"].as_str().filter(|s| !s.is_empty())) else {
        return Route::ignored(format!("HighLevel {kind} without appointment.id or locationId"));
    };
    Route::HighLevelAppointment {
        change,
        location_id: location_id.to_owned(),
        appointment: Appointment {
            id,
            calendar_id: text("calendarId"),
            contact_id: text("contactId"),
            title: text("title"),
            notes: text("notes").or_else(|| text("description")),
            status: text("appointmentStatus"),
            start_time: text("startTime"),
            end_time: text("endTime"),
            date_updated: text("dateUpdated"),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn appointment_events_route_with_their_appointment() {
        let payload = json!({"type": "AppointmentUpdate", "locationId": "L1", "appointment": {
            "id": "a1", "calendarId": "c1", "contactId": "k1", "title": "Consulta", "appointmentStatus": "confirmed",
            "startTime": "2026-12-03T08:00:00-05:00", "endTime": "2026-12-03T09:00:00-05:00",
            "dateUpdated": "2026-12-02T10:00:00.000Z", "notes": "n"}});
        let Route::HighLevelAppointment { change, location_id, appointment } = route("AppointmentUpdate", &payload) else {
            panic!("not routed");
        };
        assert_eq!((change, location_id.as_str(), appointment.id.as_str()), (Change::Updated, "L1", "a1"));
        assert_eq!(appointment.status.as_deref(), Some("confirmed"));
        assert!(matches!(route("ContactCreate", &payload), Route::Ignored { .. }));
        assert!(matches!(route("AppointmentCreate", &json!({"locationId": "L1"})), Route::Ignored { .. }));
    }
}
