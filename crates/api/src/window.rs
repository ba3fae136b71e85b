//! Maintenance windows: when a swap may start. A window is either weekly (`days` + `start`/`end`)
//! or cron-like (`schedule` + `durationMinutes`), read in an IANA time zone (UTC by default), so
//! "Saturdays 02:00–06:00 in Europe/Berlin" stays at 02:00 local across daylight-saving changes.
//!
//! Time zones come from jiff (its bundled tz database, so a machine without `/usr/share/zoneinfo`
//! answers the same); cron expressions from croner (5 fields, `L`/`#`/`W` and names allowed).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{Errors, FieldErrorKind};

const TIME_OF_DAY_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// Upper bound of a cron window's length, a week (also in the schema).
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

closed_enum! {
    /// Day of the week, for maintenance windows.
    pub enum DayOfWeek {
        Mon = "Mon",
        Tue = "Tue",
        Wed = "Wed",
        Thu = "Thu",
        Fri = "Fri",
        Sat = "Sat",
        Sun = "Sun",
    }
}

impl DayOfWeek {
    fn from_jiff(w: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as W;
        match w {
            W::Monday => DayOfWeek::Mon,
            W::Tuesday => DayOfWeek::Tue,
            W::Wednesday => DayOfWeek::Wed,
            W::Thursday => DayOfWeek::Thu,
            W::Friday => DayOfWeek::Fri,
            W::Saturday => DayOfWeek::Sat,
            W::Sunday => DayOfWeek::Sun,
        }
    }
}

/// When swaps may start. Weekly form: `days` + `start` + `end` (`end` before `start` wraps past
/// midnight; the day is the day the window opens). Cron form: `schedule` (5-field cron, the
/// moments the window opens) + `durationMinutes`. Both are read in `timeZone` (IANA, default
/// UTC).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Weekly form: days the window opens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<DayOfWeek>,
    /// Weekly form: opening time, `HH:MM` in `timeZone`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(TIME_OF_DAY_PATTERN))]
    pub start: String,
    /// Weekly form: closing time, `HH:MM` in `timeZone` (exclusive).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(TIME_OF_DAY_PATTERN))]
    pub end: String,
    /// Cron form: when the window opens, e.g. `0 22 * * Mon-Fri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Cron form: how long the window stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10080))]
    pub duration_minutes: Option<u32>,
    /// IANA time zone the times are in (`Europe/Berlin`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

fn parse_hhmm(s: &str) -> Option<i32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn time_zone(name: Option<&str>) -> Option<jiff::tz::TimeZone> {
    match name {
        None => Some(jiff::tz::TimeZone::UTC),
        Some(n) => jiff::tz::TimeZone::get(n).ok(),
    }
}

impl MaintenanceWindow {
    /// Whether `t` falls inside the window. A window that does not validate contains nothing.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let Some(tz) = time_zone(self.time_zone.as_deref()) else {
            return false;
        };
        let Ok(ts) = jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32) else {
            return false;
        };
        let local = ts.to_zoned(tz);
        match (&self.schedule, self.duration_minutes) {
            (Some(schedule), Some(minutes)) => {
                let Ok(cron) = croner::Cron::from_str(schedule) else {
                    return false;
                };
                // The last opening at or before `t`; inside while it is younger than the length.
                match cron.find_previous_occurrence(&local, true) {
                    Ok(opened) => {
                        let age = ts.as_second() - opened.timestamp().as_second();
                        (0..i64::from(minutes) * 60).contains(&age)
                    }
                    Err(_) => false,
                }
            }
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => {
                let (Some(start), Some(end)) = (parse_hhmm(&self.start), parse_hhmm(&self.end))
                else {
                    return false;
                };
                let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
                let opens_on =
                    |d: jiff::civil::Weekday| self.days.contains(&DayOfWeek::from_jiff(d));
                if start < end {
                    opens_on(local.weekday()) && (start..end).contains(&minute)
                } else {
                    (opens_on(local.weekday()) && minute >= start)
                        || (opens_on(local.weekday().previous()) && minute < end)
                }
            }
        }
    }

    /// Records every problem under `path` (`spec.maintenanceWindows[0]`).
    pub(crate) fn validate_at(&self, path: &str, errs: &mut Errors) {
        if let Some(tz) = &self.time_zone
            && jiff::tz::TimeZone::get(tz).is_err()
        {
            errs.invalid(
                format!("{path}.timeZone"),
                format!("{tz:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)"),
            );
        }
        let weekly = !self.days.is_empty() || !self.start.is_empty() || !self.end.is_empty();
        let cron = self.schedule.is_some() || self.duration_minutes.is_some();
        if weekly && cron {
            errs.invalid(
                path,
                "set either days/start/end (weekly) or schedule/durationMinutes (cron), not both",
            );
            return;
        }
        if cron {
            match &self.schedule {
                None => errs.required(format!("{path}.schedule"), "a cron schedule (5 fields)"),
                Some(s) => {
                    if s.split_whitespace().count() != 5 {
                        errs.invalid(
                            format!("{path}.schedule"),
                            format!("{s:?}: must have 5 fields (minute hour day month weekday)"),
                        );
                    } else if let Err(e) = croner::Cron::from_str(s) {
                        errs.invalid(format!("{path}.schedule"), format!("{s:?}: {e}"));
                    }
                }
            }
            match self.duration_minutes {
                None => errs.required(
                    format!("{path}.durationMinutes"),
                    "how long the window stays open",
                ),
                Some(m) if m == 0 || m > MAX_WINDOW_MINUTES => errs.invalid(
                    format!("{path}.durationMinutes"),
                    format!("{m}: must be between 1 and {MAX_WINDOW_MINUTES}"),
                ),
                Some(_) => {}
            }
            return;
        }
        if self.days.is_empty() {
            errs.required(
                format!("{path}.days"),
                "at least one day (or use schedule/durationMinutes)",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (j, d) in self.days.iter().enumerate() {
            if !seen.insert(d) {
                errs.push(
                    format!("{path}.days[{j}]"),
                    FieldErrorKind::Duplicate,
                    format!("{d} is listed twice"),
                );
            }
        }
        let start = parse_hhmm(&self.start);
        let end = parse_hhmm(&self.end);
        if start.is_none() {
            errs.invalid(
                format!("{path}.start"),
                format!("{:?}: must be HH:MM", self.start),
            );
        }
        if end.is_none() {
            errs.invalid(
                format!("{path}.end"),
                format!("{:?}: must be HH:MM", self.end),
            );
        }
        if start.is_some() && start == end {
            errs.invalid(format!("{path}.end"), "must differ from start");
        }
    }
}

/// Whether `t` is inside one of `windows`; no windows means any time.
pub fn in_windows(windows: &[MaintenanceWindow], t: DateTime<Utc>) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn weekly_windows_follow_their_time_zone_across_dst() {
        // Saturdays 02:00–06:00 in Berlin: 01:00–05:00 UTC in winter, 00:00–04:00 in summer.
        let w = MaintenanceWindow {
            days: vec![DayOfWeek::Sat],
            start: "02:00".into(),
            end: "06:00".into(),
            time_zone: Some("Europe/Berlin".into()),
            ..Default::default()
        };
        // 2026-01-03 and 2026-07-04 are Saturdays.
        assert!(!w.contains(utc(2026, 1, 3, 0, 30)));
        assert!(w.contains(utc(2026, 1, 3, 1, 0)));
        assert!(w.contains(utc(2026, 1, 3, 4, 59)));
        assert!(!w.contains(utc(2026, 1, 3, 5, 0)));
        assert!(w.contains(utc(2026, 7, 4, 0, 30)));
        assert!(!w.contains(utc(2026, 7, 4, 4, 0)));
    }

    #[test]
    fn weekly_windows_wrap_past_midnight_in_local_time() {
        // Fridays 22:00 → 02:00 in New York (UTC-5 in January).
        let w = MaintenanceWindow {
            days: vec![DayOfWeek::Fri],
            start: "22:00".into(),
            end: "02:00".into(),
            time_zone: Some("America/New_York".into()),
            ..Default::default()
        };
        // Friday 2026-01-09 23:00 local = Saturday 04:00 UTC; Saturday 01:00 local = 06:00 UTC.
        assert!(w.contains(utc(2026, 1, 10, 4, 0)));
        assert!(w.contains(utc(2026, 1, 10, 6, 59)));
        assert!(!w.contains(utc(2026, 1, 10, 7, 0)));
        // Saturday 23:00 local: the window opens on Fridays only.
        assert!(!w.contains(utc(2026, 1, 11, 4, 0)));
    }

    #[test]
    fn cron_windows_open_at_each_firing_for_their_duration() {
        let w = MaintenanceWindow {
            schedule: Some("30 1 * * Mon-Fri".into()),
            duration_minutes: Some(90),
            time_zone: Some("Asia/Tokyo".into()),
            ..Default::default()
        };
        // Monday 2026-01-05 01:30 JST = Sunday 16:30 UTC.
        assert!(!w.contains(utc(2026, 1, 4, 16, 29)));
        assert!(w.contains(utc(2026, 1, 4, 16, 30)));
        assert!(w.contains(utc(2026, 1, 4, 17, 59)));
        assert!(!w.contains(utc(2026, 1, 4, 18, 0)));
        // Saturday 01:30 JST (Friday 16:30 UTC, 2026-01-09): not a weekday firing.
        assert!(!w.contains(utc(2026, 1, 9, 16, 45)));
        assert!(w.contains(utc(2026, 1, 8, 16, 45)));
    }

    #[test]
    fn invalid_windows_name_their_field_and_contain_nothing() {
        let cases = [
            (
                MaintenanceWindow {
                    schedule: Some("61 * * * *".into()),
                    duration_minutes: Some(10),
                    ..Default::default()
                },
                "w.schedule",
            ),
            (
                MaintenanceWindow {
                    schedule: Some("0 2 * * *".into()),
                    ..Default::default()
                },
                "w.durationMinutes",
            ),
            (
                MaintenanceWindow {
                    days: vec![DayOfWeek::Mon],
                    start: "01:00".into(),
                    end: "02:00".into(),
                    time_zone: Some("Mars/Olympus".into()),
                    ..Default::default()
                },
                "w.timeZone",
            ),
            (
                MaintenanceWindow {
                    days: vec![DayOfWeek::Mon],
                    start: "01:00".into(),
                    end: "02:00".into(),
                    schedule: Some("0 2 * * *".into()),
                    duration_minutes: Some(5),
                    ..Default::default()
                },
                "w",
            ),
            (MaintenanceWindow::default(), "w.days"),
        ];
        for (w, field) in cases {
            let mut errs = Errors::default();
            w.validate_at("w", &mut errs);
            let errs = errs.into_result().unwrap_err();
            assert!(
                errs.iter().any(|e| e.field == field),
                "{w:?}: expected an error on {field}, got {errs:?}"
            );
            assert!(!w.contains(utc(2026, 1, 5, 1, 30)), "{w:?}");
        }
    }
}
