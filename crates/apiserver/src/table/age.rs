//! Durations as kubectl prints them (apimachinery's `HumanDuration`): precise while short,
//! coarser as they grow — `45s`, `3m12s`, `17m`, `5h20m`, `30h`, `3d4h`, `90d`, `3y20d`, `10y`.

use std::time::Duration;

/// The age of something created at `rfc3339`, `<unknown>` when that does not parse.
pub fn since(rfc3339: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match parse(rfc3339) {
        Some(t) => between(t, now),
        None => "<unknown>".into(),
    }
}

pub fn parse(rfc3339: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// From `start` to `end` in kubectl's words; `<invalid>` when `end` is over a second earlier.
pub fn between(start: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (end - start).num_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    human(Duration::from_secs(secs.max(0) as u64))
}

/// `d` in kubectl's words.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    let (days, years) = (h / 24, h / (24 * 365));
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s.is_multiple_of(60) => format!("{m}m"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m.is_multiple_of(60) => format!("{h}h"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h.is_multiple_of(24) => format!("{days}d"),
        _ if h < 24 * 8 => format!("{days}d{}h", h % 24),
        _ if h < 24 * 365 * 2 => format!("{days}d"),
        _ if h < 24 * 365 * 8 && days.is_multiple_of(365) => format!("{years}y"),
        _ if h < 24 * 365 * 8 => format!("{years}y{}d", days % 365),
        _ => format!("{years}y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        let cases = [
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (17 * 60 + 5, "17m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 20 * 60, "5h20m"),
            (30 * 3600, "30h"),
            (3 * 86400, "3d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (90 * 86400, "90d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn ages_count_from_the_timestamp() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(since("2026-01-02T03:03:05Z", now), "60s");
        assert_eq!(since("2026-01-01T03:04:05Z", now), "24h");
        assert_eq!(since("not a time", now), "<unknown>");
        assert_eq!(since("2026-01-02T03:05:05Z", now), "<invalid>");
    }
}
