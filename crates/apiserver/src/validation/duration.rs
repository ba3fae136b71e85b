//! Go's `time.ParseDuration`, which robfig/cron applies to a CronJob's `@every <duration>`: a
//! sign, then numbers (with fractions) each followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`,
//! `h`), as `1h30m` or `1.5s`; the errors in Go's words, as kube-apiserver reports them.

/// Nanoseconds per unit, as Go's `unitMap`.
const UNITS: [(&str, i128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `s` as a number of nanoseconds, or Go's error (`time: unknown unit "x" in duration "1x"`).
pub fn go_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
        let int_len = digits(rest);
        let whole: i128 = match int_len {
            0 => 0,
            n => rest[..n].parse().map_err(|_| invalid())?,
        };
        rest = &rest[int_len..];
        let (mut fraction, mut scale, mut frac_len) = (0i128, 1i128, 0);
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = digits(after);
            for d in after[..frac_len].bytes().take(18) {
                fraction = fraction * 10 + i128::from(d - b'0');
                scale *= 10;
            }
            rest = &after[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| format!("time: unknown unit {unit:?} in duration {s:?}"))?;
        total += whole.checked_mul(per).ok_or_else(invalid)? + fraction * per / scale;
        if total > i128::from(i64::MAX) + i128::from(negative) {
            return Err(invalid());
        }
    }
    let signed = if negative { -total } else { total };
    i64::try_from(signed).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_parse_as_go_parses_them() {
        let s = 1_000_000_000;
        for (text, want) in [
            ("0", 0),
            ("5s", 5 * s),
            ("1h30m", 5400 * s),
            ("1.5s", 1_500_000_000),
            (".5m", 30 * s),
            ("-2m", -120 * s),
            ("300ms", 300_000_000),
            ("2\u{b5}s", 2_000),
        ] {
            assert_eq!(go_duration(text), Ok(want), "{text}");
        }
        assert_eq!(
            go_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.into())
        );
        assert_eq!(
            go_duration("10"),
            Err(r#"time: missing unit in duration "10""#.into())
        );
        for bad in ["", "-", "s", "1h 30m", "9999999999h"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }
}
