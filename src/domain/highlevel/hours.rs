//! A location's business hours, per weekday, in its own time zone; and the
//! check that an appointment fits inside them.

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Invalid;

/// Opening hours of one day, `open` < `close` ("08:00"–"20:00").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    #[serde(with = "hhmm")]
    pub open: NaiveTime,
    #[serde(with = "hhmm")]
    pub close: NaiveTime,
}

/// Hours for each weekday; `None` is closed. Stored as
/// `{"mon": {"open": "08:00", "close": "20:00"}, …, "sun": null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    pub mon: Option<Hours>,
    pub tue: Option<Hours>,
    pub wed: Option<Hours>,
    pub thu: Option<Hours>,
    pub fri: Option<Hours>,
    pub sat: Option<Hours>,
    pub sun: Option<Hours>,
}

impl Default for BusinessHours {
    /// 08:00–20:00, every day.
    fn default() -> Self {
        let day = Some(Hours { open: at(8, 0), close: at(20, 0) });
        Self { mon: day, tue: day, wed: day, thu: day, fri: day, sat: day, sun: day }
    }
}

fn at(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
}

impl BusinessHours {
    pub fn on(&self, day: Weekday) -> Option<Hours> {
        match day {
            Weekday::Mon => self.mon,
            Weekday::Tue => self.tue,
            Weekday::Wed => self.wed,
            Weekday::Thu => self.thu,
            Weekday::Fri => self.fri,
            Weekday::Sat => self.sat,
            Weekday::Sun => self.sun,
        }
    }

    /// Every open day has `open` before `close`.
    pub fn validate(&self) -> Result<(), Invalid> {
        for day in [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun] {
            if let Some(h) = self.on(day) {
                if h.open >= h.close {
                    let key = day.to_string().to_lowercase();
                    return Err(Invalid::new(format!("business_hours.{key}"), "open must be before close"));
                }
            }
        }
        Ok(())
    }

    /// Whether [start, end) lies inside one day's hours, in `tz`.
    pub fn check(&self, tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Invalid> {
        let (local_start, local_end) = (start.with_timezone(&tz), end.with_timezone(&tz));
        let day = local_start.weekday();
        let Some(hours) = self.on(day) else {
            return Err(Invalid::new("start_time", format!("the location is closed on {} ({tz})", weekday_name(day))));
        };
        let same_day = local_end.date_naive() == local_start.date_naive()
            || (local_end.date_naive() == local_start.date_naive().succ_opt().unwrap_or_default()
                && local_end.time() == NaiveTime::MIN
                && hours.close == NaiveTime::MIN);
        let outside = |field: &str| {
            Invalid::new(
                field,
                format!(
                    "outside business hours: {} to {} {tz} on {}; open {}–{}",
                    local_start.format("%H:%M"),
                    local_end.format("%H:%M"),
                    weekday_name(day),
                    hours.open.format("%H:%M"),
                    hours.close.format("%H:%M"),
                ),
            )
        };
        if local_start.time() < hours.open {
            return Err(outside("start_time"));
        }
        if !same_day || local_end.time() > hours.close {
            return Err(outside("end_time"));
        }
        Ok(())
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let raw = String::deserialize(d)?;
        NaiveTime::parse_from_str(&raw, "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("{raw:?} is not a time like 08:00")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn lima_edges() {
        let lima: Tz = "America/Lima".parse().unwrap();
        let hours = BusinessHours::default();
        // 08:00–09:00 Lima (UTC-5) is inside; 19:30–20:30 is not; 19:00–20:00 ends at closing.
        assert!(hours.check(lima, utc("2026-12-03T08:00:00-05:00"), utc("2026-12-03T09:00:00-05:00")).is_ok());
        let late = hours.check(lima, utc("2026-12-03T19:30:00-05:00"), utc("2026-12-03T20:30:00-05:00")).unwrap_err();
        assert_eq!(late.field, "end_time");
        assert!(hours.check(lima, utc("2026-12-03T19:00:00-05:00"), utc("2026-12-03T20:00:00-05:00")).is_ok());
        assert_eq!(hours.check(lima, utc("2026-12-03T07:59:00-05:00"), utc("2026-12-03T08:30:00-05:00")).unwrap_err().field, "start_time");
        // The same instant written in UTC is judged in Lima: 13:00Z = 08:00 Lima.
        assert!(hours.check(lima, utc("2026-12-03T13:00:00Z"), utc("2026-12-03T14:00:00Z")).is_ok());
        // Overnight never fits one day.
        assert!(hours.check(lima, utc("2026-12-03T19:00:00-05:00"), utc("2026-12-04T09:00:00-05:00")).is_err());
    }

    #[test]
    fn per_weekday_hours_and_closed_days_in_another_zone() {
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        let hours: BusinessHours = serde_json::from_value(serde_json::json!({
            "mon": {"open": "09:00", "close": "14:00"}, "tue": null, "wed": null, "thu": null,
            "fri": null, "sat": null, "sun": null})).unwrap();
        // 2026-12-07 is a Monday; Madrid is UTC+1 in winter.
        assert!(hours.check(madrid, utc("2026-12-07T08:00:00Z"), utc("2026-12-07T09:00:00Z")).is_ok());
        assert!(hours.check(madrid, utc("2026-12-07T13:30:00Z"), utc("2026-12-07T14:00:00Z")).is_err());
        assert!(hours.check(madrid, utc("2026-12-08T09:00:00Z"), utc("2026-12-08T10:00:00Z")).unwrap_err().message.contains("closed"));
        let bad: BusinessHours = serde_json::from_value(serde_json::json!({
            "mon": {"open": "14:00", "close": "09:00"}, "tue": null, "wed": null, "thu": null,
            "fri": null, "sat": null, "sun": null})).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "business_hours.mon");
        assert!(serde_json::from_value::<Hours>(serde_json::json!({"open": "8am", "close": "20:00"})).is_err());
    }
}
