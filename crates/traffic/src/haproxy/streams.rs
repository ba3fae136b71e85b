//! `show sess all`: the streams HAProxy holds now, read for the requests a server has not
//! answered yet ([`TrafficShifter::unanswered`](crate::TrafficShifter::unanswered)).
//!
//! `show stat` has no such gauge: `scur` counts a stream whose answer is streaming as well as
//! one still waiting for its head, and the `*time` columns are averages over past requests. In
//! `show sess all` each stream is a block that starts unindented (`0x…: [accept date] id=N …`)
//! and names its `backend=`, its `server=` and, for an HTTP stream, its transaction:
//! `txn=… status=-1 … rsp.st=MSG_RPBEFORE` until the server's answer head is in. The brief
//! `show sess` encodes the same only in analyser bits that change between releases. Checked
//! against HAProxy 2.6.
//!
//! A stream's age is its accept date (microseconds, HAProxy's local time) subtracted from the
//! newest accept date in the reply, the CLI stream that asked, so no clock or time zone outside
//! HAProxy is involved; the `age=` field (whole seconds) is the fallback.

use std::time::Duration;

use super::date;
use crate::{Backend, Unanswered};

/// One stream of a `show sess all` reply, as far as [`unanswered`] needs it.
#[derive(Debug, Default, PartialEq)]
struct Stream<'a> {
    /// Microseconds since 1970-01-01 in HAProxy's local time.
    accepted_us: Option<i64>,
    backend: Option<&'a str>,
    server: Option<&'a str>,
    age: Option<Duration>,
    /// `status=-1` in its `txn=` line: no answer head yet.
    waiting: bool,
}

/// What [`unanswered`] found in one `show sess all` reply.
#[derive(Debug, Default, PartialEq)]
pub struct Held {
    pub count: Unanswered,
    /// The accept date (µs, see [`date`]) of the youngest of green's counted streams.
    pub youngest_green_us: Option<i64>,
}

/// The streams of backend `backend` that have waited at least `older_than` for their server's
/// answer head, per server (`blue`, `green`; other servers are not rotor's).
pub fn unanswered(reply: &str, backend: &str, older_than: Duration) -> Held {
    let mut held = Held::default();
    let streams = streams(reply);
    let now_us = streams.iter().filter_map(|s| s.accepted_us).max();
    for stream in streams {
        if stream.backend != Some(backend) || !stream.waiting {
            continue;
        }
        let age = match (now_us, stream.accepted_us) {
            (Some(now), Some(then)) => Some(Duration::from_micros(now.saturating_sub(then) as u64)),
            _ => stream.age,
        };
        if age.is_none_or(|age| age < older_than) {
            continue;
        }
        match stream.server {
            Some(s) if s == Backend::Blue.as_str() => held.count.blue += 1,
            Some(s) if s == Backend::Green.as_str() => {
                held.count.green += 1;
                held.youngest_green_us = held.youngest_green_us.max(stream.accepted_us);
            }
            _ => {}
        }
    }
    held
}

/// Each stream block of `reply`.
fn streams(reply: &str) -> Vec<Stream<'_>> {
    let mut blocks: Vec<Stream<'_>> = Vec::new();
    for line in reply.lines() {
        if line.starts_with("0x") {
            blocks.push(Stream {
                accepted_us: accept_date(line),
                ..Stream::default()
            });
            continue;
        }
        let Some(stream) = blocks.last_mut() else {
            continue;
        };
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("backend=") {
            stream.backend = rest.split_whitespace().next();
        } else if let Some(rest) = line.strip_prefix("server=") {
            stream.server = rest.split_whitespace().next();
        } else if line.starts_with("task=") {
            stream.age = field(line, "age=").and_then(human_time);
        } else if line.starts_with("txn=") {
            stream.waiting = field(line, "status=") == Some("-1");
        }
    }
    blocks
}

/// The accept date of a block's first line (`0x…: [05/Dec/2026:16:56:12.431776] id=…`).
fn accept_date(line: &str) -> Option<i64> {
    date::micros(&line[line.find('[')? + 1..line.find(']')?])
}

/// The value of `key` (e.g. `age=`) in `line`, up to the next space or `)`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find([' ', ')']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// HAProxy's human time (`3s`, `1m5s`, `2h0m`, `1d3h`) as a duration.
fn human_time(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = 0u64;
    let mut seen_digit = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            digits = digits.checked_mul(10)?.checked_add(u64::from(d))?;
            seen_digit = true;
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        if !seen_digit {
            return None;
        }
        total = total.checked_add(digits.checked_mul(unit)?)?;
        (digits, seen_digit) = (0, false);
    }
    (!seen_digit).then_some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from HAProxy 2.6: a green stream streaming its answer (status 200), a blue one
    /// waiting for its head, another backend's waiting stream, and the CLI's own stream.
    const REPLY: &str = "\
0x558deac42470: [05/Dec/2026:16:56:12.431776] id=1 proto=tcpv4 source=127.0.0.1:47490
  frontend=f (id=2 mode=http), listener=? (id=1) addr=127.0.0.1:18080
  backend=ep_x (id=3 mode=http) addr=127.0.0.1:52114
  server=green (id=2) addr=127.0.0.1:18082
  task=0x558dead5d940 (state=0x00 nice=0 calls=4 rate=1 exp=27s tmask=0x1 age=2s)
  txn=0x558dead5dab0 flags=0x3000 meth=1 status=200 req.st=MSG_DONE rsp.st=MSG_DATA
0x7f5c20042150: [05/Dec/2026:16:56:12.432128] id=0 proto=tcpv4 source=127.0.0.1:47494
  backend=ep_x (id=3 mode=http) addr=127.0.0.1:55002
  server=blue (id=1) addr=127.0.0.1:18081
  task=0x7f5c20042540 (state=0x00 nice=0 calls=3 rate=1 exp=27s tmask=0x2 age=1m2s)
  txn=0x7f5c20042720 flags=0x3000 meth=1 status=-1 req.st=MSG_DONE rsp.st=MSG_RPBEFORE
0x7f5c20042151: [05/Dec/2026:16:56:12.432128] id=4 proto=tcpv4 source=127.0.0.1:47495
  backend=ep_y (id=4 mode=http) addr=127.0.0.1:55003
  server=green (id=2) addr=127.0.0.1:18083
  task=0x7f5c20042541 (state=0x00 nice=0 calls=3 rate=1 exp=27s tmask=0x2 age=9s)
  txn=0x7f5c20042721 flags=0x3000 meth=1 status=-1 req.st=MSG_DONE rsp.st=MSG_RPBEFORE
0x7f5c20043170: [05/Dec/2026:16:56:14.439893] id=3 proto=unix_stream source=unix:1
  backend=<NONE> (id=-1 mode=-)
  server=<NONE> (id=-1)
  task=0x7f5c20043560 (state=0x00 nice=-64 calls=1 rate=1 exp=10s tmask=0x2 age=0s)
";

    #[test]
    fn counts_streams_waiting_for_their_head_per_server_of_the_backend() {
        let one = Duration::from_secs(1);
        let x = unanswered(REPLY, "ep_x", one);
        assert_eq!(
            x.count,
            Unanswered {
                blue: 1,
                ..Default::default()
            }
        );
        assert_eq!(x.youngest_green_us, None);
        let y = unanswered(REPLY, "ep_y", one);
        assert_eq!(
            y.count,
            Unanswered {
                green: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            y.youngest_green_us,
            date::micros("05/Dec/2026:16:56:12.432128")
        );
        assert_eq!(
            unanswered(REPLY, "ep_y", Duration::from_secs(10)),
            Held::default()
        );
        assert_eq!(unanswered("", "ep_x", one), Held::default());
    }

    #[test]
    fn ages_come_from_accept_dates_to_the_microsecond() {
        // ep_x's blue stream was accepted at 12.432128, the CLI's stream at 14.439893: 2.0 s.
        assert_eq!(
            unanswered(REPLY, "ep_x", Duration::from_millis(2_007))
                .count
                .blue,
            1
        );
        assert_eq!(
            unanswered(REPLY, "ep_x", Duration::from_millis(2_008)),
            Held::default()
        );
        assert_eq!(
            accept_date("0x1: [01/Jan/1970:00:00:01.000002] id=1"),
            Some(1_000_002)
        );
        assert_eq!(accept_date("0x1: id=1"), None);
    }

    #[test]
    fn reads_haproxys_human_times() {
        assert_eq!(human_time("0s"), Some(Duration::ZERO));
        assert_eq!(human_time("2s"), Some(Duration::from_secs(2)));
        assert_eq!(human_time("1m2s"), Some(Duration::from_secs(62)));
        assert_eq!(human_time("1d3h"), Some(Duration::from_secs(97_200)));
        assert_eq!(human_time("2h0m"), Some(Duration::from_secs(7_200)));
        assert_eq!(human_time("<NEVER>"), None);
        assert_eq!(human_time("12"), None);
        assert_eq!(human_time("s"), None);
    }
}
