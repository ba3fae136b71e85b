//! What a load counts: requests by method and how each failed, the streams, the failed
//! requests of each URL (the injected cluster's, in `rotor demo`), and the first failures
//! verbatim.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::Method;

/// What one method's requests came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodReport {
    pub total: u64,
    pub failed: u64,
    /// Of `failed`: answered with a non-2xx status.
    pub status: u64,
    /// Of `failed`: no answer in time (the request or its body).
    pub timeout: u64,
    /// Of `failed`: the connection failed (refused, reset, broken body).
    pub reset: u64,
}

/// What the long-lived streams came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Streams opened (2xx answer), reopenings after a clean end included.
    pub opened: u64,
    /// Attempts to open one that got no 2xx answer.
    pub refused: u64,
    /// Streams that ended mid-message, with an error, or went silent for the request timeout.
    pub broken: u64,
    /// Whole messages received.
    pub messages: u64,
}

/// What a load run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub requests: u64,
    /// Non-2xx answers, connection errors and timeouts.
    pub failed: u64,
    /// Of `failed`: answered with a non-2xx status.
    pub failed_status: u64,
    /// Of `failed`: no answer in time (the request or its body).
    pub failed_timeout: u64,
    /// Of `failed`: the connection failed (refused, reset, broken body).
    pub failed_connection: u64,
    pub get: MethodReport,
    pub post: MethodReport,
    /// Of the requests, how many asked to be answered late (see [`Mix::slow_percent`]).
    pub slow: u64,
    pub streams: StreamReport,
}

/// The failed requests of one URL, by method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlFailures {
    pub get: u64,
    pub post: u64,
}

/// One failed request, kept so a failure can be traced to its endpoint and moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSample {
    /// Milliseconds after the load started.
    pub at_ms: u64,
    pub url: String,
    /// `POST 503: <the start of the body>`, `GET timeout`, `stream broken: <why>`, …
    pub what: String,
}

/// How many failures a run keeps verbatim (the counters count them all).
const SAMPLES_KEPT: usize = 50;

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    Status(String),
    Timeout,
    Connection(String),
}

/// How a stream ended.
pub(super) enum StreamEnd {
    /// The server ended it after a whole message (or the load stopped).
    Clean,
    Refused(String),
    Broken(String),
}

#[derive(Default)]
struct MethodCounters {
    total: AtomicU64,
    failed: AtomicU64,
    status: AtomicU64,
    timeout: AtomicU64,
    reset: AtomicU64,
}

impl MethodCounters {
    fn report(&self) -> MethodReport {
        MethodReport {
            total: self.total.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            status: self.status.load(Ordering::Relaxed),
            timeout: self.timeout.load(Ordering::Relaxed),
            reset: self.reset.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
pub(super) struct StreamCounters {
    pub(super) opened: AtomicU64,
    refused: AtomicU64,
    broken: AtomicU64,
    pub(super) messages: AtomicU64,
}

pub(super) struct Counters {
    started: Instant,
    get: MethodCounters,
    post: MethodCounters,
    pub(super) streams: StreamCounters,
    /// Slow requests sent (those drawn slow while there was room for them).
    pub(super) slow: AtomicU64,
    samples: Mutex<Vec<FailureSample>>,
    /// Failed requests per URL; written on a failure only, so a healthy run never locks it.
    failed_by_url: Mutex<BTreeMap<String, UrlFailures>>,
}

impl Counters {
    pub(super) fn new() -> Self {
        Counters {
            started: Instant::now(),
            get: MethodCounters::default(),
            post: MethodCounters::default(),
            streams: StreamCounters::default(),
            slow: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            failed_by_url: Mutex::default(),
        }
    }

    pub(super) fn record(&self, method: &Method, url: &str, outcome: Outcome) {
        let counters = if *method == Method::POST {
            &self.post
        } else {
            &self.get
        };
        counters.total.fetch_add(1, Ordering::Relaxed);
        let (kind, what) = match outcome {
            Outcome::Ok => return,
            Outcome::Status(what) => (&counters.status, what),
            Outcome::Timeout => (&counters.timeout, "timeout".to_string()),
            Outcome::Connection(e) => (&counters.reset, format!("connection: {e}")),
        };
        kind.fetch_add(1, Ordering::Relaxed);
        counters.failed.fetch_add(1, Ordering::Relaxed);
        {
            let mut by_url = self.failed_by_url.lock().unwrap_or_else(|p| p.into_inner());
            let of_url = by_url.entry(url.to_string()).or_default();
            match *method {
                Method::POST => of_url.post += 1,
                _ => of_url.get += 1,
            }
        }
        self.sample(url, format!("{method} {what}"));
    }

    pub(super) fn record_stream(&self, url: &str, end: &StreamEnd) {
        let (counter, what) = match end {
            StreamEnd::Clean => return,
            StreamEnd::Refused(why) => (&self.streams.refused, format!("stream refused: {why}")),
            StreamEnd::Broken(why) => (&self.streams.broken, format!("stream broken: {why}")),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.sample(url, what);
    }

    fn sample(&self, url: &str, what: String) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < SAMPLES_KEPT {
            samples.push(FailureSample {
                at_ms: self.started.elapsed().as_millis() as u64,
                url: url.to_string(),
                what,
            });
        }
    }

    pub(super) fn samples(&self) -> Vec<FailureSample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn failed_by_url(&self) -> BTreeMap<String, UrlFailures> {
        self.failed_by_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn report(&self) -> LoadReport {
        let (get, post) = (self.get.report(), self.post.report());
        let s = &self.streams;
        LoadReport {
            requests: get.total + post.total,
            failed: get.failed + post.failed,
            failed_status: get.status + post.status,
            failed_timeout: get.timeout + post.timeout,
            failed_connection: get.reset + post.reset,
            get,
            post,
            slow: self.slow.load(Ordering::Relaxed),
            streams: StreamReport {
                opened: s.opened.load(Ordering::Relaxed),
                refused: s.refused.load(Ordering::Relaxed),
                broken: s.broken.load(Ordering::Relaxed),
                messages: s.messages.load(Ordering::Relaxed),
            },
        }
    }
}
