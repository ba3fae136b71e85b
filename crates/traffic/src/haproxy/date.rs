//! HAProxy's dates (`05/Dec/2026:16:56:12.431776` in `show sess`, `…:12.431` in a log line's
//! `%t`): both in HAProxy's local time, so only compared with each other, never with a clock
//! outside HAProxy.

/// Microseconds since 1970-01-01 of `date` read as UTC (whatever zone HAProxy printed it in); a
/// fraction of fewer than six digits is scaled (`.431` is 431,000 µs).
pub(super) fn micros(date: &str) -> Option<i64> {
    let (day_part, time) = date.split_once(':')?;
    let mut d = day_part.split('/');
    let day: i64 = d.next()?.parse().ok()?;
    let month_name = d.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year: i64 = d.next()?.parse().ok()?;
    let (hms, fraction) = time.split_once('.')?;
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10_i64.pow(6 - fraction.len() as u32);
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3_600 + m * 60 + s;
    Some(seconds * 1_000_000 + fraction.parse::<i64>().ok()? * scale)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_microseconds_and_milliseconds_across_months() {
        assert_eq!(micros("01/Jan/1970:00:00:01.000002"), Some(1_000_002));
        assert_eq!(micros("01/Jan/1970:00:00:01.431"), Some(1_431_000));
        let feb = micros("29/Feb/2028:23:59:59.000000").unwrap();
        let mar = micros("01/Mar/2028:00:00:00.500").unwrap();
        assert_eq!(mar - feb, 1_500_000);
        assert_eq!(micros("31/Foo/2028:00:00:00.0"), None);
        assert_eq!(micros("01/Jan/1970:00:00:01"), None);
        assert_eq!(micros("01/Jan/1970:00:00:01.1234567"), None);
        assert_eq!(micros("01/Jan/1970:00:00:01.-1"), None);
    }
}
