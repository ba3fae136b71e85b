//! Latencies behind HAProxy, from its logs: its statistics hold averages only, but every
//! request's log line has its timers. The generated config (and an operator's, by the same two
//! lines, see [`log_lines`]) sends one line per request, in [`LOG_FORMAT`], to a UDP socket
//! rotor reads ([`LatencyLog`]); each line adds the request's time to its answer's head to its
//! backend's and server's histogram ([`LatencyBook`]), which
//! [`TrafficShifter::latencies`](crate::TrafficShifter::latencies) reads.
//!
//! The time to the head is `%Tw + %Tc + %Tr` (queue, connect, server's answer); a request that
//! got no answer (`%Tr` = -1: refused, timed out, reset) counts its total active time `%Ta`. A
//! datagram lost on the way (loopback rarely loses any) leaves a request uncounted.
//!
//! A line's accept date `%t` (HAProxy's clock, like `show sess`'s) tells until when each server
//! is known to have gone on answering: the latest accept date of a request it answered, which
//! [`TrafficShifter::unanswered`](crate::TrafficShifter::unanswered) compares with its held
//! requests'. Lines without it (an operator's older `log-format`) count as before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::date;
use crate::{Backend, BackendLatencies, TrafficError};

/// The log line rotor reads: a marker, the backend, the server, `%Tw %Tc %Tr %Ta` in ms, then
/// the accept date.
pub const LOG_FORMAT: &str = "rotor-latency %b %s %Tw %Tc %Tr %Ta %t";

/// The two haproxy.cfg lines (for `defaults`) that send [`LOG_FORMAT`] lines to `to`.
pub fn log_lines(to: SocketAddr) -> [String; 2] {
    [
        format!("log {to} len 1024 format raw local0 info"),
        format!("log-format \"{LOG_FORMAT}\""),
    ]
}

/// Histograms per backend (`ep_<endpoint>`), filled from log lines.
#[derive(Clone, Debug, Default)]
pub struct LatencyBook(Arc<Mutex<HashMap<String, Entry>>>);

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    latencies: BackendLatencies,
    /// The latest accept date (µs, see `date`) of a request green answered.
    green_answered_us: Option<i64>,
}

impl LatencyBook {
    /// Counts one log line; anything that is not a [`LOG_FORMAT`] line for server `blue` or
    /// `green` is ignored.
    pub fn record(&self, line: &str) {
        if let Some(l) = parse_line(line) {
            let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = book.entry(l.backend.to_string()).or_default();
            entry.latencies.get_mut(l.server).record(l.took);
            if l.server == Backend::Green && l.answered {
                entry.green_answered_us = entry.green_answered_us.max(l.accepted_us);
            }
        }
    }

    /// `backend`'s histograms (empty before its first request).
    pub fn get(&self, backend: &str) -> BackendLatencies {
        self.entry(backend).latencies
    }

    /// The latest accept date (µs in HAProxy's local time) of a request of `backend` that green
    /// answered, as far as its log lines have arrived.
    pub fn green_answered_us(&self, backend: &str) -> Option<i64> {
        self.entry(backend).green_answered_us
    }

    fn entry(&self, backend: &str) -> Entry {
        let book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        book.get(backend).copied().unwrap_or_default()
    }
}

/// What rotor reads of one [`LOG_FORMAT`] line.
struct Line<'a> {
    backend: &'a str,
    server: Backend,
    /// To the answer's head, or the whole attempt when there was none.
    took: Duration,
    /// The server sent an answer head.
    answered: bool,
    accepted_us: Option<i64>,
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let (_, rest) = line.split_once("rotor-latency ")?;
    let mut fields = rest.split_whitespace();
    let backend = fields.next()?;
    let server = match fields.next()? {
        "blue" => Backend::Blue,
        "green" => Backend::Green,
        _ => return None,
    };
    let mut timer = || fields.next()?.parse::<i64>().ok();
    let (tw, tc, tr, ta) = (timer()?, timer()?, timer()?, timer()?);
    let ms = if tr >= 0 {
        tw.max(0) + tc.max(0) + tr
    } else {
        ta.max(0)
    };
    Some(Line {
        backend,
        server,
        took: Duration::from_millis(ms as u64),
        answered: tr >= 0,
        accepted_us: fields.next().and_then(date::micros),
    })
}

/// A UDP socket HAProxy logs to, read by a task that fills a [`LatencyBook`]; the task ends
/// when this is dropped.
#[derive(Debug)]
pub struct LatencyLog {
    addr: SocketAddr,
    book: LatencyBook,
    task: JoinHandle<()>,
}

impl LatencyLog {
    /// Listens on `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> Result<Self, TrafficError> {
        let listen_err = |source| TrafficError::Listen {
            listen: addr,
            source,
        };
        let socket = UdpSocket::bind(addr).await.map_err(listen_err)?;
        let addr = socket.local_addr().map_err(listen_err)?;
        let book = LatencyBook::default();
        let filled = book.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok(n) = socket.recv(&mut buf).await {
                filled.record(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Ok(Self { addr, book, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn book(&self) -> LatencyBook {
        self.book.clone()
    }
}

impl Drop for LatencyLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_time_to_the_head_or_the_whole_failed_attempt() {
        let book = LatencyBook::default();
        book.record("rotor-latency ep_x green 0 1 120 125");
        book.record("<134>Dec  5 10:00:00 haproxy[1]: rotor-latency ep_x green 0 0 -1 8000");
        book.record("rotor-latency ep_x blue 0 0 3 4");
        book.record("rotor-latency ep_x <NOSRV> -1 -1 -1 0");
        book.record("something else");
        let x = book.get("ep_x");
        assert_eq!((x.green.total(), x.blue.total()), (2, 1));
        assert_eq!(x.green.quantile_ms(0.5), Some(150));
        assert_eq!(x.green.quantile_ms(1.0), Some(8_000));
        assert_eq!(x.blue.quantile_ms(1.0), Some(5));
        assert_eq!(book.get("ep_y").green.total(), 0);
        assert_eq!(book.green_answered_us("ep_x"), None);
    }

    #[test]
    fn keeps_the_latest_accept_date_green_answered() {
        let book = LatencyBook::default();
        book.record("rotor-latency ep_x green 0 0 5 6 05/Dec/2026:16:56:12.431");
        book.record("rotor-latency ep_x green 0 0 5 6 05/Dec/2026:16:56:12.120");
        // Not answered (timed out), not green, another backend: none moves it.
        book.record("rotor-latency ep_x green 0 0 -1 8000 05/Dec/2026:16:56:13.000");
        book.record("rotor-latency ep_x blue 0 0 5 6 05/Dec/2026:16:56:14.000");
        book.record("rotor-latency ep_y green 0 0 5 6 05/Dec/2026:16:56:15.000");
        assert_eq!(
            book.green_answered_us("ep_x"),
            date::micros("05/Dec/2026:16:56:12.431")
        );
        assert_eq!(book.get("ep_x").green.total(), 3);
    }
}
