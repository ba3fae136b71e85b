//! A [`TrafficShifter`] over a real HAProxy, driven through its runtime API (the admin-level
//! `stats socket`): weights change without a reload and are read back after every change.
//!
//! Model: endpoint `x` is a `frontend fe_x` on its own listen address and a `backend ep_x`
//! (`balance roundrobin`) with two servers, `blue` and `green`. Weights are the percentages
//! themselves (HAProxy accepts 0..=256). Green starts in maintenance with weight 0 and is made
//! ready by [`register`](TrafficShifter::register).
//!
//! Retries: the generated config ([`render_config`]) retries a failed request up to
//! [`ConfigOptions::retries`] times and redispatches every retry to the other server
//! (`option redispatch 1`; HAProxy picks another server than the one that failed when there is
//! one). It retries on connection failures, on an empty response or none within
//! `timeout server`, and on a 500, 501, 502, 503 or 504; all but connection failures (where the
//! request was never sent) only for `GET`, `HEAD` and `OPTIONS`
//! (`http-request disable-l7-retry unless METH_GET || METH_OPTIONS`). HAProxy copies a request
//! into a buffer for these "L7" retries by itself; a request larger than `tune.bufsize` (16 KiB)
//! is not retried. `option http-buffer-request` is not needed: bodiless GETs are retried
//! without it (tested), and bodies are not retried anyway. Unlike the simulator, HAProxy never
//! redispatches to a server with weight 0: at 100 % green a failing green fails requests
//! (retried on green itself), and at 100 % blue a failing blue is not saved by green. Retrying a
//! refused connection on the same server waits min(`timeout connect`, 1 s) first, so there a
//! request waits up to `retries` seconds (3 s by default) for its 503 (measured: 1.5 s with
//! `timeout connect 500ms`).
//!
//! [`backend_stats`](TrafficShifter::backend_stats) reads `show stat` (see
//! [`parse_backend_stats`] for which columns and why).
//!
//! The module: [`HaproxyShifter`] and its [`TrafficShifter`] impl here, the parsing of the
//! runtime API's replies in `replies`, haproxy.cfg generation in `config`, and the process
//! (`HaproxyProcess`, which `rotor demo --traffic haproxy` runs) in `process`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{
    Backend, BackendLatencies, BackendStats, Sessions, TrafficError, TrafficShifter, Unanswered,
    Weights, validate_endpoint,
};

mod check;
mod config;
mod date;
mod process;
mod replies;
mod streams;
mod timing;

pub use check::{ConfigProblem, check_config};
pub use config::{ConfigOptions, EndpointConfig, render_config};
pub use process::{HaproxyProcess, find_haproxy};
pub use replies::{ServerState, parse_backend_stats, parse_sessions};
use replies::{
    expect_silent, parse_epoch, parse_get_weight, parse_servers_state, rejection, settled,
    split_replies,
};
pub use timing::{LOG_FORMAT, LatencyBook, LatencyLog, log_lines};

/// Placeholder address of a server whose real address is not known at config time. Nothing
/// listens on port 1, and the server is `disabled` until registered anyway.
pub const PLACEHOLDER_ADDR: &str = "127.0.0.1:1";

/// Largest reply read from the runtime API; the replies rotor asks for are a few hundred bytes,
/// but for `show sess all` (about 2 KiB per stream, so this bounds it to some 30,000 streams).
const MAX_REPLY: u64 = 64 << 20;

/// The HAProxy backend that serves `endpoint`.
pub fn backend_name(endpoint: &str) -> String {
    format!("ep_{endpoint}")
}

/// The HAProxy frontend that receives `endpoint`'s traffic.
pub fn frontend_name(endpoint: &str) -> String {
    format!("fe_{endpoint}")
}

/// Drives one HAProxy through its runtime API socket. Cheap to clone; every call opens its own
/// connection (HAProxy's non-interactive mode), bounded by [`HaproxyShifter::timeout`].
#[derive(Clone, Debug)]
pub struct HaproxyShifter {
    socket: PathBuf,
    timeout: Duration,
    /// Per-request latencies from HAProxy's logs, when it sends them to rotor (see `timing`).
    latency: Option<LatencyBook>,
}

impl HaproxyShifter {
    /// A shifter for the HAProxy whose `stats socket ... level admin` is at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: Duration::from_secs(2),
            latency: None,
        }
    }

    /// Latencies from `book`, which a [`LatencyLog`] fills from this HAProxy's logs.
    pub fn with_latencies(mut self, book: LatencyBook) -> Self {
        self.latency = Some(book);
        self
    }

    /// Bound on one round trip (connect, send, read the whole reply). Default 2 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Send one raw runtime-API line (e.g. `show info`) and return the reply. `context` names
    /// what the caller is about in errors (an endpoint or the process).
    pub async fn raw(&self, context: &str, line: &str) -> Result<String, TrafficError> {
        if line.contains('\n') {
            return Err(TrafficError::Protocol {
                endpoint: context.to_string(),
                command: line.to_string(),
                reply: "a command line must not contain a newline".to_string(),
            });
        }
        self.round_trip(context, "runtime API command", line).await
    }

    /// One connection: send `line`, read until HAProxy closes it, all within `self.timeout`.
    async fn round_trip(
        &self,
        endpoint: &str,
        what: &'static str,
        line: &str,
    ) -> Result<String, TrafficError> {
        let io_err = |source| TrafficError::Io {
            endpoint: endpoint.to_string(),
            what,
            socket: self.socket.clone(),
            source,
        };
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await.map_err(io_err)?;
            let mut request = String::with_capacity(line.len() + 1);
            request.push_str(line);
            request.push('\n');
            stream.write_all(request.as_bytes()).await.map_err(io_err)?;
            let mut reply = Vec::new();
            (&mut stream)
                .take(MAX_REPLY)
                .read_to_end(&mut reply)
                .await
                .map_err(io_err)?;
            Ok(String::from_utf8_lossy(&reply).into_owned())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TrafficError::Timeout {
                endpoint: endpoint.to_string(),
                what,
                after: self.timeout,
            }),
        }
    }

    /// Run several commands in ONE connection (joined with `;`), returning one reply per
    /// command. HAProxy ends every command's output with an empty line; the commands rotor
    /// batches print at most one line each, except `show servers state`, which must be last.
    async fn batch(
        &self,
        endpoint: &str,
        what: &'static str,
        commands: &[String],
    ) -> Result<Vec<String>, TrafficError> {
        let line = commands.join("; ");
        let reply = self.round_trip(endpoint, what, &line).await?;
        let replies = split_replies(&reply, commands.len());
        if replies.len() < commands.len() {
            return Err(TrafficError::Protocol {
                endpoint: endpoint.to_string(),
                command: line,
                reply,
            });
        }
        Ok(replies)
    }

    /// Refuses an HAProxy rotor cannot keep its guarantees behind (see `check`): its runtime
    /// API must be at level admin, and `config` (its haproxy.cfg) must give every `ep_*`
    /// backend what zero downtime relies on. Every problem is named.
    pub async fn check(&self, config: &Path) -> Result<(), TrafficError> {
        let level = self.raw("runtime API", "show cli level").await?;
        let mut problems: Vec<ConfigProblem> =
            check::check_level(&level).err().into_iter().collect();
        let text = std::fs::read_to_string(config).map_err(|source| TrafficError::Process {
            message: format!("reading HAProxy's configuration {}", config.display()),
            source: Some(source),
        })?;
        problems.extend(check_config(&text));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TrafficError::Unfit {
                config: config.to_path_buf(),
                problems,
            })
        }
    }

    /// Current state of both servers of `endpoint`'s backend, one round trip.
    pub async fn server_states(
        &self,
        endpoint: &str,
    ) -> Result<HashMap<String, ServerState>, TrafficError> {
        validate_endpoint(endpoint)?;
        let command = format!("show servers state {}", backend_name(endpoint));
        let replies = self
            .batch(
                endpoint,
                "reading server state",
                std::slice::from_ref(&command),
            )
            .await?;
        parse_servers_state(endpoint, &command, &replies[0])
    }
}

fn verify_server(
    endpoint: &str,
    server: Backend,
    states: &HashMap<String, ServerState>,
    addr: Option<SocketAddr>,
) -> Result<(), TrafficError> {
    // parse_servers_state guarantees both servers are present.
    let Some(state) = states.get(server.as_str()) else {
        return Err(TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "server state",
            expected: format!("server {server}"),
            found: "nothing".to_string(),
        });
    };
    let verify = |what, expected: String, found: String| TrafficError::Verify {
        endpoint: endpoint.to_string(),
        what,
        expected,
        found,
    };
    match addr {
        Some(addr) => {
            if state.socket_addr() != Some(addr) {
                return Err(verify(
                    "server address",
                    format!("{server} at {addr}"),
                    format!("{:?}:{:?}", state.addr, state.port),
                ));
            }
            if !state.ready() {
                return Err(verify(
                    "server state",
                    format!("{server} ready"),
                    format!("admin state {}", state.admin_state),
                ));
            }
        }
        None => {
            if state.ready() {
                return Err(verify(
                    "server state",
                    format!("{server} in maintenance"),
                    "ready".to_string(),
                ));
            }
        }
    }
    Ok(())
}

fn set_addr_command(backend: &str, server: Backend, addr: SocketAddr) -> String {
    format!(
        "set server {backend}/{server} addr {} port {}",
        addr.ip(),
        addr.port()
    )
}

#[async_trait]
impl TrafficShifter for HaproxyShifter {
    /// One round trip: set addresses and states, then `show servers state` to verify.
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let be = backend_name(endpoint);
        // (command, prints nothing on success)
        let mut commands: Vec<(String, bool)> = vec![
            (set_addr_command(&be, Backend::Blue, blue), false),
            (format!("set server {be}/blue state ready"), true),
        ];
        match green {
            Some(green) => {
                commands.push((set_addr_command(&be, Backend::Green, green), false));
                commands.push((format!("set server {be}/green state ready"), true));
            }
            None => {
                // Blue up before green down: between the two commands some server must carry
                // weight (when green hands over to a new blue at the same address, both do).
                commands.push((format!("set weight {be}/blue 100"), true));
                commands.push((format!("set weight {be}/green 0"), true));
                commands.push((format!("set server {be}/green state maint"), true));
            }
        }
        let show = format!("show servers state {be}");
        commands.push((show.clone(), false));
        let lines: Vec<String> = commands.iter().map(|(c, _)| c.clone()).collect();
        let replies = self.batch(endpoint, "registering backends", &lines).await?;
        let last = lines.len() - 1;
        for (i, (command, silent)) in commands[..last].iter().enumerate() {
            if *silent {
                expect_silent(endpoint, command, &replies[i])?;
            } else if let Some(message) = rejection(&replies[i]) {
                // `set server … addr` prints a message on success too; the state is verified below.
                return Err(TrafficError::Command {
                    endpoint: endpoint.to_string(),
                    command: command.clone(),
                    message: message.to_string(),
                });
            }
        }
        let states = parse_servers_state(endpoint, &show, &replies[last])?;
        verify_server(endpoint, Backend::Blue, &states, Some(blue))?;
        verify_server(endpoint, Backend::Green, &states, green)?;
        tracing::debug!(endpoint, %blue, ?green, "registered backends in HAProxy");
        Ok(())
    }

    /// One round trip (two when green gets a share: green must be registered first): set both
    /// weights, larger new weight first, then `get weight` both and compare. A rollback to
    /// all-blue is therefore a single connection.
    ///
    /// Larger first: between the two commands the backend has the new larger weight (≥ 50) and
    /// the old other one, so some server always carries weight. Smaller first would pass
    /// through blue=0 green=0 on a rollback from 100 % green, and HAProxy answers 503 to the
    /// requests that arrive in that instant.
    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let be = backend_name(endpoint);
        if weights.green_pct() > 0 {
            let states = self.server_states(endpoint).await?;
            if !states.get("green").is_some_and(ServerState::ready) {
                return Err(TrafficError::GreenNotRegistered {
                    endpoint: endpoint.to_string(),
                    green: weights.green_pct(),
                });
            }
        }
        let set_blue = format!("set weight {be}/blue {}", weights.blue_pct());
        let set_green = format!("set weight {be}/green {}", weights.green_pct());
        let (first, second) = if weights.blue_pct() >= weights.green_pct() {
            (set_blue, set_green)
        } else {
            (set_green, set_blue)
        };
        let get_blue = format!("get weight {be}/blue");
        let get_green = format!("get weight {be}/green");
        let commands = [first, second, get_blue, get_green];
        let replies = self.batch(endpoint, "setting weights", &commands).await?;
        expect_silent(endpoint, &commands[0], &replies[0])?;
        expect_silent(endpoint, &commands[1], &replies[1])?;
        let blue = parse_get_weight(endpoint, &commands[2], &replies[2])?;
        let green = parse_get_weight(endpoint, &commands[3], &replies[3])?;
        if (blue, green) != (weights.blue_pct(), weights.green_pct()) {
            return Err(TrafficError::Verify {
                endpoint: endpoint.to_string(),
                what: "weights",
                expected: weights.to_string(),
                found: format!("blue={blue} green={green}"),
            });
        }
        tracing::debug!(endpoint, %weights, "set HAProxy weights");
        Ok(())
    }

    /// One round trip: `show stat ep_<endpoint> 4 -1` (the backend's server rows), mapped as
    /// [`parse_backend_stats`] describes. Cumulative since HAProxy started (or since
    /// `clear counters`).
    ///
    /// Read twice, 2 ms apart, keeping the smaller failure count: under load HAProxy can let a
    /// finished attempt leave `scur` just before its status reaches `hrsp_2xx`, and a read in
    /// that moment counts a success as a failure (seen in a test: 1 of 470 healthy requests).
    /// A real failure stays in the counters and shows in both reads.
    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError> {
        validate_endpoint(endpoint)?;
        let command = format!("show stat {} 4 -1", backend_name(endpoint));
        let read = || async {
            let reply = self
                .round_trip(endpoint, "reading statistics", &command)
                .await?;
            parse_backend_stats(endpoint, &command, &reply)
        };
        let first = read().await?;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let second = read().await?;
        Ok(settled(first, second))
    }

    /// From HAProxy's per-request log lines (see `timing`): its statistics hold averages only.
    /// An HAProxy that does not log to rotor has nothing for a latency gate to judge.
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError> {
        validate_endpoint(endpoint)?;
        match &self.latency {
            Some(book) => Ok(book.get(&backend_name(endpoint))),
            None => Err(TrafficError::NoLatencies {
                endpoint: endpoint.to_string(),
                shifter: "haproxy without a log to rotor",
            }),
        }
    }

    /// One round trip: each server's `scur` in `show stat`. A server with weight 0 gets no new
    /// sessions (the effect of HAProxy's `drain` state, which rotor does not set: weight 0
    /// alone keeps a rollback one `set weight` away), and its open ones end as their clients
    /// and the server end them.
    async fn sessions(&self, endpoint: &str) -> Result<Sessions, TrafficError> {
        validate_endpoint(endpoint)?;
        let command = format!("show stat {} 4 -1", backend_name(endpoint));
        let reply = self
            .round_trip(endpoint, "reading sessions", &command)
            .await?;
        parse_sessions(endpoint, &command, &reply)
    }

    /// One round trip: `show sess all`, every stream HAProxy holds, of which those of
    /// `ep_<endpoint>` still waiting for their server's answer head (see `streams`), aged by
    /// their accept dates. Whether green went on answering comes from the log lines' accept
    /// dates (see `timing`), the same clock as `show sess`'s: green answered a request accepted
    /// after the youngest of those it holds. Compared to the millisecond the log prints, a tie
    /// counts as not answering. Without a log to rotor it cannot be told (`None`).
    async fn unanswered(
        &self,
        endpoint: &str,
        older_than: Duration,
    ) -> Result<Unanswered, TrafficError> {
        validate_endpoint(endpoint)?;
        let reply = self
            .round_trip(endpoint, "reading unanswered requests", "show sess all")
            .await?;
        if let Some(message) = rejection(&reply) {
            return Err(TrafficError::Protocol {
                endpoint: endpoint.to_string(),
                command: "show sess all".to_string(),
                reply: message.to_string(),
            });
        }
        let backend = backend_name(endpoint);
        let held = streams::unanswered(&reply, &backend, older_than);
        let answered = self.latency.as_ref().map(|b| b.green_answered_us(&backend));
        let green_answering = match (held.youngest_green_us, answered) {
            (Some(youngest), Some(answered)) => {
                Some(answered.is_some_and(|a| a / 1_000 > youngest / 1_000))
            }
            _ => None,
        };
        Ok(Unanswered {
            green_answering,
            ..held.count
        })
    }

    /// The worker's pid and start time from `show info`: a restart or a reload (a new worker,
    /// which reads the config file, not the runtime changes) changes one or both.
    async fn epoch(&self) -> Result<Option<String>, TrafficError> {
        let command = "show info";
        let info = self.raw("runtime API", command).await?;
        parse_epoch(&info)
            .map(Some)
            .ok_or_else(|| TrafficError::Protocol {
                endpoint: "runtime API".to_string(),
                command: command.to_string(),
                reply: info,
            })
    }

    async fn weights(&self, endpoint: &str) -> Result<Weights, TrafficError> {
        validate_endpoint(endpoint)?;
        let be = backend_name(endpoint);
        let commands = [
            format!("get weight {be}/blue"),
            format!("get weight {be}/green"),
        ];
        let replies = self.batch(endpoint, "reading weights", &commands).await?;
        let blue = parse_get_weight(endpoint, &commands[0], &replies[0])?;
        let green = parse_get_weight(endpoint, &commands[1], &replies[1])?;
        Weights::new(blue, green).map_err(|_| TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "weights",
            expected: "blue + green = 100".to_string(),
            found: format!("blue={blue} green={green}"),
        })
    }
}
