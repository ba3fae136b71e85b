//! A CronJob's schedule as upstream's cronjob controller reads it: robfig/cron's standard five
//! fields and `@` descriptors (croner parses them, the crate the Rollout maintenance windows
//! already use; `@midnight` is robfig's name for `@daily`), evaluated in `spec.timeZone` (the
//! controller's zone, UTC, without one); and `@every <duration>`, robfig's constant delay: whole
//! seconds (at least one), counted from the previous start time (from the CronJob's creation
//! before the first), whatever the zone.

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Upstream warns (`TooManyMissedTimes`) once more than this many start times were missed.
pub const MANY_MISSED: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("unparseable schedule: {schedule:?} : {message}")]
    Unparseable { schedule: String, message: String },
    #[error("invalid timeZone: {0:?}")]
    UnknownTimeZone(String),
}

/// A parsed schedule in its time zone.
#[derive(Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Debug)]
enum Kind {
    Cron(Box<Cron>),
    /// `@every`: the delay in whole seconds, at least one.
    Every(i64),
}

/// robfig's `Every`: below a second is a second, the rest is cut to whole seconds.
fn every(schedule: &str, duration: &str) -> Result<Kind, ScheduleError> {
    let nanos = rotor_apiserver::validation::go_duration(duration).map_err(|e| {
        ScheduleError::Unparseable {
            schedule: schedule.to_string(),
            message: format!("failed to parse duration {schedule}: {e}"),
        }
    })?;
    Ok(Kind::Every((nanos / 1_000_000_000).max(1)))
}

/// The start time a CronJob owes now, and how many it missed before it (up to `MANY_MISSED + 1`).
#[derive(Debug, PartialEq)]
pub struct Due {
    pub at: Timestamp,
    pub missed: usize,
}

impl Schedule {
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let tz = match time_zone {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?
            }
        };
        let text = match schedule.trim() {
            s if s.eq_ignore_ascii_case("@midnight") => "@daily",
            s => s,
        };
        if let Some(duration) = text.strip_prefix("@every ") {
            let kind = every(schedule, duration)?;
            return Ok(Schedule { kind, tz });
        }
        let cron = text
            .parse::<Cron>()
            .map_err(|e| ScheduleError::Unparseable {
                schedule: schedule.to_string(),
                message: e.to_string(),
            })?;
        Ok(Schedule {
            kind: Kind::Cron(Box::new(cron)),
            tz,
        })
    }

    /// The first start time strictly after `t` (robfig's `Next`; for `@every`, `t` cut to the
    /// second plus the delay).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Cron(cron) => {
                let zoned = t.to_zoned(self.tz.clone());
                let next = cron.find_next_occurrence(&zoned, false).ok()?;
                Some(next.timestamp())
            }
            Kind::Every(delay) => Timestamp::from_second(t.as_second().checked_add(*delay)?).ok(),
        }
    }

    /// When the CronJob looks again: the first start time after `now` in the sequence that
    /// starts after `earliest` (the same as [`Self::next_after`] `now` but for `@every`, whose
    /// start times count from `earliest`).
    pub fn next_start(&self, earliest: Timestamp, now: Timestamp) -> Option<Timestamp> {
        match self.kind {
            Kind::Cron(_) => self.next_after(now),
            Kind::Every(_) => match self.most_recent(earliest, now) {
                Some(due) => self.next_after(due.at),
                None => self.next_after(earliest),
            },
        }
    }

    /// The most recent start time in `(earliest, now]`, if any, with the number of start times
    /// in that interval before it.
    pub fn most_recent(&self, earliest: Timestamp, now: Timestamp) -> Option<Due> {
        let cron = match &self.kind {
            Kind::Cron(cron) => cron,
            Kind::Every(delay) => return every_most_recent(*delay, earliest, now),
        };
        let zoned = now.to_zoned(self.tz.clone());
        let at = cron
            .find_previous_occurrence(&zoned, true)
            .ok()?
            .timestamp();
        if at <= earliest {
            return None;
        }
        let mut missed = 0;
        let mut t = earliest;
        while missed <= MANY_MISSED {
            match self.next_after(t) {
                Some(n) if n < at => {
                    missed += 1;
                    t = n;
                }
                _ => break,
            }
        }
        Some(Due { at, missed })
    }

    /// The wall-clock time of `t` in the schedule's zone as RFC 3339 (`2026-01-01T09:00:00+01:00`),
    /// how upstream stamps a Job's `batch.kubernetes.io/cronjob-scheduled-timestamp`.
    pub fn local_rfc3339(&self, t: Timestamp) -> String {
        let zoned = t.to_zoned(self.tz.clone());
        if zoned.offset().seconds() == 0 {
            return zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// `@every`'s start times are `earliest` (to the second) plus whole delays, as upstream's
/// controller counts them from its first two: the last one not after `now`.
fn every_most_recent(delay: i64, earliest: Timestamp, now: Timestamp) -> Option<Due> {
    let first = earliest.as_second().checked_add(delay)?;
    let elapsed = now.as_second().checked_sub(first)?;
    if elapsed < 0 {
        return None;
    }
    let missed = elapsed / delay;
    let at = Timestamp::from_second(first + missed * delay).ok()?;
    let missed = usize::try_from(missed)
        .unwrap_or(usize::MAX)
        .min(MANY_MISSED + 1);
    Some(Due { at, missed })
}

/// `t` less `seconds`, saturating at the earliest representable time.
pub fn seconds_before(t: Timestamp, seconds: i64) -> Timestamp {
    t.checked_sub(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn standard_fields_and_descriptors() {
        let every_five = Schedule::parse("*/5 * * * *", None).expect("parses");
        assert_eq!(
            every_five.next_after(ts("2026-03-01T10:02:30Z")),
            Some(ts("2026-03-01T10:05:00Z"))
        );
        // Strictly after: a start time is not its own next.
        assert_eq!(
            every_five.next_after(ts("2026-03-01T10:05:00Z")),
            Some(ts("2026-03-01T10:10:00Z"))
        );
        for (macro_, next) in [
            ("@hourly", "2026-03-01T11:00:00Z"),
            ("@daily", "2026-03-02T00:00:00Z"),
            ("@midnight", "2026-03-02T00:00:00Z"),
            ("@weekly", "2026-03-08T00:00:00Z"),
            ("@monthly", "2026-04-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
        ] {
            let s = Schedule::parse(macro_, None).expect(macro_);
            assert_eq!(
                s.next_after(ts("2026-03-01T10:02:00Z")),
                Some(ts(next)),
                "{macro_}"
            );
        }
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(ScheduleError::Unparseable { .. })
        ));
    }

    #[test]
    fn every_counts_whole_delays_from_the_earliest_time() {
        let s = Schedule::parse("@every 90s", Some("Asia/Tokyo")).expect("parses");
        let created = ts("2026-03-01T10:00:30.400Z");
        assert_eq!(s.next_after(created), Some(ts("2026-03-01T10:02:00Z")));
        assert_eq!(s.most_recent(created, ts("2026-03-01T10:01:59.900Z")), None);
        assert_eq!(
            s.most_recent(created, ts("2026-03-01T10:02:00Z")),
            Some(Due {
                at: ts("2026-03-01T10:02:00Z"),
                missed: 0
            })
        );
        // 10:02:00, 10:03:30 and 10:05:00 have passed: the last is owed, two were missed.
        let now = ts("2026-03-01T10:05:10Z");
        assert_eq!(
            s.most_recent(created, now),
            Some(Due {
                at: ts("2026-03-01T10:05:00Z"),
                missed: 2
            })
        );
        assert_eq!(s.next_start(created, now), Some(ts("2026-03-01T10:06:30Z")));
        assert_eq!(
            s.next_start(created, ts("2026-03-01T10:01:00Z")),
            Some(ts("2026-03-01T10:02:00Z"))
        );
        // Below a second is a second; fractions of a second are cut.
        for (text, delay) in [("@every 300ms", 1), ("@every 1.7s", 1), ("@every 1h", 3600)] {
            let s = Schedule::parse(text, None).expect(text);
            let t = ts("2026-03-01T00:00:00Z");
            assert_eq!(
                s.next_after(t).map(|n| n.as_second() - t.as_second()),
                Some(delay),
                "{text}"
            );
        }
        assert!(matches!(
            Schedule::parse("@every 5 minutes", None),
            Err(ScheduleError::Unparseable { message, .. }) if message.contains("unknown unit")
        ));
    }

    #[test]
    fn a_time_zone_moves_the_start_times() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).expect("parses");
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        assert_eq!(
            s.next_after(ts("2026-01-15T00:00:00Z")),
            Some(ts("2026-01-15T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-07-15T00:00:00Z")),
            Some(ts("2026-07-15T07:00:00Z"))
        );
        assert_eq!(
            s.local_rfc3339(ts("2026-01-15T08:00:00Z")),
            "2026-01-15T09:00:00+01:00"
        );
        assert_eq!(
            Schedule::parse("0 9 * * *", Some("Mars/Olympus")).err(),
            Some(ScheduleError::UnknownTimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn the_most_recent_start_time_and_the_missed_ones() {
        let s = Schedule::parse("* * * * *", None).expect("parses");
        let created = ts("2026-03-01T10:00:30Z");
        assert_eq!(s.most_recent(created, ts("2026-03-01T10:00:59Z")), None);
        assert_eq!(
            s.most_recent(created, ts("2026-03-01T10:01:00Z")),
            Some(Due {
                at: ts("2026-03-01T10:01:00Z"),
                missed: 0
            })
        );
        assert_eq!(
            s.most_recent(created, ts("2026-03-01T10:04:10Z")),
            Some(Due {
                at: ts("2026-03-01T10:04:00Z"),
                missed: 3
            })
        );
        // Already started at 10:04: nothing more is due until 10:05.
        assert_eq!(
            s.most_recent(ts("2026-03-01T10:04:00Z"), ts("2026-03-01T10:04:50Z")),
            None
        );
        let long_ago = s.most_recent(ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z"));
        assert!(long_ago.is_some_and(|d| d.missed > MANY_MISSED));
    }
}
