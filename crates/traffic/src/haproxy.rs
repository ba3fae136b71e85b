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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{
    Backend, BackendCounters, BackendStats, TrafficError, TrafficShifter, Weights,
    validate_endpoint,
};

/// Placeholder address of a server whose real address is not known at config time. Nothing
/// listens on port 1, and the server is `disabled` until registered anyway.
pub const PLACEHOLDER_ADDR: &str = "127.0.0.1:1";

/// Largest reply read from the runtime API; the replies rotor asks for are a few hundred bytes.
const MAX_REPLY: u64 = 1 << 20;

/// HAProxy admin-state bits (`srv_admin_state` in `show servers state`): forced and inherited
/// maintenance. Either one means the server takes no traffic.
const ADMF_FMAINT: u32 = 0x01;
const ADMF_IMAINT: u32 = 0x02;

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
}

impl HaproxyShifter {
    /// A shifter for the HAProxy whose `stats socket ... level admin` is at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: Duration::from_secs(2),
        }
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

/// One server as `show servers state` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub admin_state: u32,
    pub weight: u32,
}

impl ServerState {
    /// Not in forced or inherited maintenance: it can take traffic if its weight is > 0.
    pub fn ready(&self) -> bool {
        self.admin_state & (ADMF_FMAINT | ADMF_IMAINT) == 0
    }

    pub fn socket_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.addr?, self.port?))
    }
}

/// Split a non-interactive reply into per-command replies (see [`HaproxyShifter::batch`]).
fn split_replies(reply: &str, expected: usize) -> Vec<String> {
    let mut replies = Vec::with_capacity(expected);
    let mut current: Vec<&str> = Vec::new();
    for line in reply.lines() {
        if line.is_empty() {
            replies.push(current.join("\n"));
            current.clear();
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        replies.push(current.join("\n"));
    }
    replies
}

/// Parse `N (initial M)` into N.
fn parse_get_weight(endpoint: &str, command: &str, reply: &str) -> Result<u8, TrafficError> {
    let protocol = || TrafficError::Protocol {
        endpoint: endpoint.to_string(),
        command: command.to_string(),
        reply: reply.to_string(),
    };
    let trimmed = reply.trim();
    let Some((current, rest)) = trimmed.split_once(' ') else {
        return Err(rejected_or(endpoint, command, reply, protocol));
    };
    if !rest.starts_with("(initial ") {
        return Err(rejected_or(endpoint, command, reply, protocol));
    }
    let weight: u32 = current.parse().map_err(|_| protocol())?;
    u8::try_from(weight)
        .ok()
        .filter(|w| *w <= 100)
        .ok_or_else(|| TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "weight (a percentage)",
            expected: "0..=100".to_string(),
            found: weight.to_string(),
        })
}

/// The error message in a reply, if it is one (`No such backend.`, `Invalid addr …`).
fn rejection(reply: &str) -> Option<&str> {
    let msg = reply.trim();
    let known = [
        "No such",
        "Can't find",
        "Invalid",
        "Require",
        "Unknown",
        "Permission denied",
    ];
    known.iter().any(|p| msg.starts_with(p)).then_some(msg)
}

/// A reply that is an error message becomes a `Command` error; anything else is `other`.
fn rejected_or(
    endpoint: &str,
    command: &str,
    reply: &str,
    other: impl FnOnce() -> TrafficError,
) -> TrafficError {
    match rejection(reply) {
        Some(message) => TrafficError::Command {
            endpoint: endpoint.to_string(),
            command: command.to_string(),
            message: message.to_string(),
        },
        None => other(),
    }
}

/// A command that prints nothing on success (`set weight`, `set server … state`).
fn expect_silent(endpoint: &str, command: &str, reply: &str) -> Result<(), TrafficError> {
    if reply.trim().is_empty() {
        Ok(())
    } else {
        Err(TrafficError::Command {
            endpoint: endpoint.to_string(),
            command: command.to_string(),
            message: reply.trim().to_string(),
        })
    }
}

fn parse_servers_state(
    endpoint: &str,
    command: &str,
    reply: &str,
) -> Result<HashMap<String, ServerState>, TrafficError> {
    let protocol = || TrafficError::Protocol {
        endpoint: endpoint.to_string(),
        command: command.to_string(),
        reply: reply.to_string(),
    };
    let mut lines = reply.lines();
    let header = lines
        .by_ref()
        .find(|l| l.starts_with("# "))
        .ok_or_else(|| rejected_or(endpoint, command, reply, protocol))?;
    let columns: Vec<&str> = header[2..].split_whitespace().collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).ok_or_else(protocol);
    let (be, srv, addr, admin, weight, port) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_admin_state")?,
        col("srv_uweight")?,
        col("srv_port")?,
    );
    let backend = backend_name(endpoint);
    let mut servers = HashMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < columns.len() || fields[be] != backend {
            continue;
        }
        servers.insert(
            fields[srv].to_string(),
            ServerState {
                addr: fields[addr].parse().ok(),
                port: fields[port].parse().ok(),
                admin_state: fields[admin].parse().map_err(|_| protocol())?,
                weight: fields[weight].parse().map_err(|_| protocol())?,
            },
        );
    }
    for name in [Backend::Blue.as_str(), Backend::Green.as_str()] {
        if !servers.contains_key(name) {
            return Err(TrafficError::Command {
                endpoint: endpoint.to_string(),
                command: command.to_string(),
                message: format!("backend {backend} has no server {name:?}"),
            });
        }
    }
    Ok(servers)
}

/// Split one line of HAProxy's CSV: fields are separated by `,`; a field may be double-quoted
/// (with `""` for a quote inside), which HAProxy does for texts such as check descriptions.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// [`BackendStats`] from the reply to `show stat ep_<endpoint> 4 -1` (the server rows of the
/// endpoint's backend, CSV with a `# pxname,svname,…` header; columns are found by name).
///
/// Measured on HAProxy 2.6 with the generated config (50/50, green answering 503 to every
/// request, all retried on blue): green's `stot` counts every attempt, retries included, but a
/// 503 that triggered a retry is in neither `hrsp_5xx` nor `eresp` — only in `wretr`/`wredis`,
/// and those count inconsistently (an L7 retry redispatched adds one to both, an L7 retry on the
/// same server two to `wretr`, a connection failure redispatched only one to `wredis`, and
/// `econ` counts only the last, unretried connection failure). So failures are derived from
/// what did succeed instead:
///
/// * `requests` = `stot`: attempts sent to the server (a request retried on it again counts
///   again).
/// * `failures` = `stot` − `scur` (attempts still in flight) − (`hrsp_2xx` + `hrsp_3xx` +
///   `hrsp_4xx`) (final answers that were not errors) + `srv_abrt` (a non-5xx answer whose body
///   the server cut off). That is: every 5xx whether retried or not, connection errors, empty or
///   timed-out responses, protocol errors (`hrsp_other`) and truncated answers.
///
/// `hrsp_1xx` is left out because HAProxy counts interim `100 Continue` answers there in
/// addition to the final one (measured); the price is that a `101 Switching Protocols`
/// (WebSocket upgrade) counts as a failure. A client that gives up before the server answered
/// also counts as a failure of that server. Saturating throughout, and never above `requests`.
/// Two reads of the counters as one: `first`'s requests, and failures only as far as `second`
/// still shows them (see [`HaproxyShifter::backend_stats`]).
fn settled(first: BackendStats, second: BackendStats) -> BackendStats {
    let one = |a: BackendCounters, b: BackendCounters| BackendCounters {
        requests: a.requests,
        failures: a.failures.min(b.failures),
    };
    BackendStats {
        blue: one(first.blue, second.blue),
        green: one(first.green, second.green),
    }
}

pub fn parse_backend_stats(
    endpoint: &str,
    command: &str,
    reply: &str,
) -> Result<BackendStats, TrafficError> {
    let protocol = || TrafficError::Protocol {
        endpoint: endpoint.to_string(),
        command: command.to_string(),
        reply: reply.to_string(),
    };
    let mut lines = reply.lines();
    let header = lines
        .by_ref()
        .find(|l| l.starts_with("# "))
        .ok_or_else(|| rejected_or(endpoint, command, reply, protocol))?;
    let columns = split_csv(&header[2..]);
    let col = |name: &str| columns.iter().position(|c| c == name).ok_or_else(protocol);
    let (px, sv) = (col("pxname")?, col("svname")?);
    let [stot, scur, ok2, ok3, ok4, aborted] = [
        "stot", "scur", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "srv_abrt",
    ]
    .map(col);
    let (stot, scur, aborted) = (stot?, scur?, aborted?);
    let ok = [ok2?, ok3?, ok4?];
    let backend = backend_name(endpoint);
    let mut found: [Option<BackendCounters>; 2] = [None, None];
    for line in lines {
        let fields = split_csv(line);
        if fields.len() < columns.len() || fields[px] != backend {
            continue;
        }
        let slot = match fields[sv].as_str() {
            "blue" => 0,
            "green" => 1,
            _ => continue,
        };
        // HAProxy leaves a counter empty when it does not apply; that is a 0.
        let num = |i: usize| -> Result<u64, TrafficError> {
            let field = fields[i].trim();
            if field.is_empty() {
                Ok(0)
            } else {
                field.parse().map_err(|_| protocol())
            }
        };
        let requests = num(stot)?;
        let mut answered = 0u64;
        for i in ok {
            answered = answered.saturating_add(num(i)?);
        }
        let failures = requests
            .saturating_sub(num(scur)?)
            .saturating_sub(answered)
            .saturating_add(num(aborted)?)
            .min(requests);
        found[slot] = Some(BackendCounters { requests, failures });
    }
    match found {
        [Some(blue), Some(green)] => Ok(BackendStats { blue, green }),
        _ => Err(TrafficError::Command {
            endpoint: endpoint.to_string(),
            command: command.to_string(),
            message: format!("backend {backend} lacks server blue or green in `show stat`"),
        }),
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

/// One endpoint in a generated haproxy.cfg. Built through [`EndpointConfig::new`], so the name
/// is always valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    name: String,
    listen: SocketAddr,
    blue: Option<SocketAddr>,
    green: Option<SocketAddr>,
}

impl EndpointConfig {
    /// Endpoint `name` receiving traffic on `listen`; backends unknown yet.
    pub fn new(name: &str, listen: SocketAddr) -> Result<Self, TrafficError> {
        validate_endpoint(name)?;
        Ok(Self {
            name: name.to_string(),
            listen,
            blue: None,
            green: None,
        })
    }

    /// Blue's address, when known at config time (it then serves at once).
    pub fn with_blue(mut self, blue: SocketAddr) -> Self {
        self.blue = Some(blue);
        self
    }

    /// Green's address, when known at config time (it still waits, disabled, for `register`).
    pub fn with_green(mut self, green: SocketAddr) -> Self {
        self.green = Some(green);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }
}

/// Settings of a generated haproxy.cfg besides the endpoints.
#[derive(Clone, Debug)]
pub struct ConfigOptions {
    pub connect_timeout: Duration,
    pub client_timeout: Duration,
    pub server_timeout: Duration,
    pub maxconn: u32,
    /// How many times a failed request is retried, each time on the other server when it has
    /// weight > 0 (see the module docs). 0 turns retries off.
    pub retries: u32,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            client_timeout: Duration::from_secs(30),
            server_timeout: Duration::from_secs(30),
            maxconn: 4096,
            retries: 3,
        }
    }
}

/// When a request is retried (`retry-on`): everything HAProxy 2.6 can retry on that means the
/// server failed, except `junk-response` (a garbled answer is more likely the request's fault).
const RETRY_ON: &str = "conn-failure empty-response response-timeout 500 501 502 503 504";

/// Only idempotent requests are retried once sent (`METH_GET` covers `HEAD`); a connection
/// failure is retried for every method, the request never having reached the server.
const NO_L7_RETRY: &str = "http-request disable-l7-retry unless METH_GET || METH_OPTIONS";

/// An address as HAProxy's config parser wants it (`ipv6@` prefix for IPv6).
fn haproxy_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("ipv6@{}:{}", a.ip(), a.port()),
    }
}

/// Double-quoted for the config parser (which expands `$VAR` and `\` escapes inside quotes).
fn quote(path: &Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A complete haproxy.cfg: the admin runtime socket at `socket`, the retry settings of the module
/// docs, and per endpoint a frontend on its listen address and a `balance roundrobin` backend
/// `ep_<name>` with servers `blue` (weight 100; `disabled` if its address is unknown) and
/// `green` (weight 0, `disabled`, at [`PLACEHOLDER_ADDR`] if unknown) — both wait for
/// [`TrafficShifter::register`].
pub fn render_config(
    endpoints: &[EndpointConfig],
    socket: &Path,
    options: &ConfigOptions,
) -> String {
    let ms = |d: Duration| d.as_millis();
    let mut cfg = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        cfg,
        "# Generated by rotor-traffic. Weights change at runtime through the stats socket.\n\
         global\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         \x20   stats timeout 10s\n\
         \x20   maxconn {maxconn}\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect {connect}ms\n\
         \x20   timeout client {client}ms\n\
         \x20   timeout server {server}ms\n\
         \x20   timeout http-request {client}ms\n\
         \x20   retries {retries}\n\
         \x20   option redispatch 1\n\
         \x20   retry-on {RETRY_ON}\n",
        socket = quote(socket),
        retries = options.retries,
        maxconn = options.maxconn,
        connect = ms(options.connect_timeout),
        client = ms(options.client_timeout),
        server = ms(options.server_timeout),
    );
    for ep in endpoints {
        let blue = match ep.blue {
            Some(addr) => format!("{} weight 100", haproxy_addr(addr)),
            None => format!("{PLACEHOLDER_ADDR} weight 100 disabled"),
        };
        let green = ep
            .green
            .map_or_else(|| PLACEHOLDER_ADDR.to_string(), haproxy_addr);
        let _ = write!(
            cfg,
            "\n\
             frontend {fe}\n\
             \x20   bind {listen}\n\
             \x20   default_backend {be}\n\
             \n\
             backend {be}\n\
             \x20   balance roundrobin\n\
             \x20   {NO_L7_RETRY}\n\
             \x20   server blue {blue}\n\
             \x20   server green {green} weight 0 disabled\n",
            fe = frontend_name(&ep.name),
            be = backend_name(&ep.name),
            listen = haproxy_addr(ep.listen),
        );
    }
    cfg
}

/// Where the `haproxy` binary is: `$ROTOR_HAPROXY`, else `PATH`, else the sbin directories
/// (Debian installs it in /usr/sbin, which is not on every user's PATH).
pub fn find_haproxy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTOR_HAPROXY") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
}

/// A HAProxy started in the foreground (`-db`) on a generated config in its own temp dir;
/// killed (and reaped) on drop.
#[derive(Debug)]
pub struct HaproxyProcess {
    child: Child,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    // Last field: removed after the child is gone.
    _dir: tempfile::TempDir,
}

impl HaproxyProcess {
    /// [`find_haproxy`] + [`HaproxyProcess::start_with`] with default options.
    pub async fn start(
        endpoints: &[EndpointConfig],
        ready_timeout: Duration,
    ) -> Result<Self, TrafficError> {
        let binary = find_haproxy().ok_or_else(|| TrafficError::Process {
            message: "haproxy not found in $ROTOR_HAPROXY, PATH or /usr/sbin".to_string(),
            source: None,
        })?;
        Self::start_with(&binary, endpoints, &ConfigOptions::default(), ready_timeout).await
    }

    /// Write the config, start `binary -f CFG -db`, and wait until the runtime socket answers
    /// `show info`, at most `ready_timeout`.
    pub async fn start_with(
        binary: &Path,
        endpoints: &[EndpointConfig],
        options: &ConfigOptions,
        ready_timeout: Duration,
    ) -> Result<Self, TrafficError> {
        let process_err = |message: String, source: Option<std::io::Error>| TrafficError::Process {
            message,
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("rotor-haproxy-")
            .tempdir()
            .map_err(|e| process_err("creating a temp dir".to_string(), Some(e)))?;
        let socket = dir.path().join("admin.sock");
        // sun_path holds 108 bytes including the NUL.
        if socket.as_os_str().len() >= 104 {
            return Err(process_err(
                format!("socket path {socket:?} is too long for a unix socket; set TMPDIR"),
                None,
            ));
        }
        let config = dir.path().join("haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        std::fs::write(&config, render_config(endpoints, &socket, options))
            .map_err(|e| process_err(format!("writing {config:?}"), Some(e)))?;
        let log_file = std::fs::File::create(&log)
            .map_err(|e| process_err(format!("creating {log:?}"), Some(e)))?;
        let log_file2 = log_file
            .try_clone()
            .map_err(|e| process_err(format!("opening {log:?}"), Some(e)))?;
        let child = Command::new(binary)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file2)
            .spawn()
            .map_err(|e| process_err(format!("starting {binary:?}"), Some(e)))?;
        // From here on, Drop kills the child on every error path.
        let mut process = Self {
            child,
            socket,
            config,
            log,
            _dir: dir,
        };
        process.wait_ready(ready_timeout).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, ready_timeout: Duration) -> Result<(), TrafficError> {
        let deadline = Instant::now() + ready_timeout;
        let probe = self.shifter().with_timeout(Duration::from_millis(250));
        let mut last_error = String::from("socket not created yet");
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(TrafficError::Process {
                        message: format!(
                            "haproxy exited with {status} before it was ready: {}",
                            self.log_tail()
                        ),
                        source: None,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(TrafficError::Process {
                        message: "checking the haproxy child".to_string(),
                        source: Some(e),
                    });
                }
            }
            if self.socket.exists() {
                match probe.raw("haproxy", "show info").await {
                    Ok(info) if info.contains("Name: HAProxy") => return Ok(()),
                    Ok(info) => last_error = format!("unexpected `show info` reply {info:?}"),
                    Err(e) => last_error = e.to_string(),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TrafficError::Process {
                    message: format!(
                        "runtime socket {:?} did not answer `show info` within {ready_timeout:?} ({last_error}); log: {}",
                        self.socket,
                        self.log_tail()
                    ),
                    source: None,
                });
            }
            // Poll interval while HAProxy parses its config and binds (typically < 50 ms).
            tokio::time::sleep((deadline - now).min(Duration::from_millis(10))).await;
        }
    }

    /// A shifter on this process's runtime socket.
    pub fn shifter(&self) -> HaproxyShifter {
        HaproxyShifter::new(&self.socket)
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 2 KiB of HAProxy's stdout/stderr (warnings, alerts).
    pub fn log_tail(&self) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(2048);
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            Err(e) => format!("(log unreadable: {e})"),
        }
    }
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        // Ignore errors: the child may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_counts_once_a_second_read_still_shows_it() {
        let stats = |bf, gf| BackendStats {
            blue: BackendCounters {
                requests: 470,
                failures: bf,
            },
            green: BackendCounters {
                requests: 469,
                failures: gf,
            },
        };
        // A transient 1 on blue vanishes; green's real 3 (4 by the second read) counts as 3.
        let got = settled(stats(1, 3), stats(0, 4));
        assert_eq!(got.blue.failures, 0);
        assert_eq!(got.green.failures, 3);
        assert_eq!((got.blue.requests, got.green.requests), (470, 469));
    }

    #[test]
    fn splits_batched_replies() {
        let reply = "\n\n0 (initial 0)\n\n100 (initial 100)\n\n";
        assert_eq!(
            split_replies(reply, 4),
            vec!["", "", "0 (initial 0)", "100 (initial 100)"]
        );
        let reply = "No such backend.\n\n\n1\n# be_id be_name\n3 ep_a\n\n";
        assert_eq!(
            split_replies(reply, 3),
            vec!["No such backend.", "", "1\n# be_id be_name\n3 ep_a"]
        );
    }

    #[test]
    fn parses_get_weight() {
        assert_eq!(parse_get_weight("a", "get", "50 (initial 0)").unwrap(), 50);
        assert!(matches!(
            parse_get_weight("a", "get", "No such backend."),
            Err(TrafficError::Command { .. })
        ));
        assert!(matches!(
            parse_get_weight("a", "get", "200 (initial 1)"),
            Err(TrafficError::Verify { .. })
        ));
        assert!(matches!(
            parse_get_weight("a", "get", "garbage"),
            Err(TrafficError::Protocol { .. })
        ));
    }

    #[test]
    fn parses_servers_state() {
        let reply = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
            3 ep_a 1 blue 127.0.0.1 2 0 100 100 1 1 0 2 0 0 0 0 - 9 - 0 0 - - 0\n\
            3 ep_a 2 green ::1 0 5 0 0 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0";
        let states = parse_servers_state("a", "show", reply).unwrap();
        assert!(states["blue"].ready());
        assert_eq!(
            states["blue"].socket_addr(),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert!(!states["green"].ready());
        assert_eq!(
            states["green"].socket_addr(),
            Some("[::1]:1".parse().unwrap())
        );
        assert!(matches!(
            parse_servers_state("a", "show", "Can't find backend."),
            Err(TrafficError::Command { .. })
        ));
    }

    #[test]
    fn renders_config() {
        let eps = [
            EndpointConfig::new("a", "127.0.0.1:8001".parse().unwrap())
                .unwrap()
                .with_blue("127.0.0.1:9001".parse().unwrap()),
            EndpointConfig::new("b", "[::1]:8002".parse().unwrap())
                .unwrap()
                .with_green("[::1]:9002".parse().unwrap()),
        ];
        let cfg = render_config(
            &eps,
            Path::new("/tmp/x/admin.sock"),
            &ConfigOptions::default(),
        );
        assert!(cfg.contains("stats socket \"/tmp/x/admin.sock\" mode 600 level admin"));
        assert!(cfg.contains("frontend fe_a\n    bind 127.0.0.1:8001\n    default_backend ep_a"));
        assert!(cfg.contains("server blue 127.0.0.1:9001 weight 100\n"));
        assert!(cfg.contains("server green 127.0.0.1:1 weight 0 disabled\n"));
        assert!(cfg.contains("bind ipv6@::1:8002"));
        assert!(cfg.contains("server blue 127.0.0.1:1 weight 100 disabled\n"));
        assert!(cfg.contains("server green ipv6@::1:9002 weight 0 disabled\n"));
        assert_eq!(cfg.matches("balance roundrobin").count(), 2);
        assert!(cfg.contains(
            "    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response \
             response-timeout 500 501 502 503 504\n"
        ));
        assert_eq!(
            cfg.matches("    http-request disable-l7-retry unless METH_GET || METH_OPTIONS\n")
                .count(),
            2
        );
    }

    #[test]
    fn splits_csv() {
        assert_eq!(split_csv("a,,b"), vec!["a", "", "b"]);
        assert_eq!(split_csv(""), vec![""]);
        assert_eq!(
            split_csv("x,\"L7 \"\"bad\"\", 503\",y"),
            vec!["x", "L7 \"bad\", 503", "y"]
        );
    }

    #[test]
    fn parses_backend_stats() {
        // Real `show stat ep_x 4 -1` columns (HAProxy 2.6), trimmed after srv_abrt plus a quoted
        // field; values from a run with green answering 503 (retried) and one request in flight.
        let header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
                      eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,\
                      qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,\
                      check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,\
                      hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,\
                      last_chk,";
        let blue = "ep_x,blue,0,0,1,1,,101,0,0,,0,,0,0,0,0,no check,50,1,0,,,1,,,1,3,1,,100,,2,\
                    0,,0,,,,0,95,3,2,0,0,,,,100,0,0,\"a, b\",";
        let green = "ep_x,green,0,0,0,1,,99,0,0,,0,,0,2,99,99,no check,50,1,0,,,1,,,1,3,2,,99,,2,\
                     0,,0,,,,5,5,0,0,0,0,,,,0,0,2,,";
        let reply = format!("{header}\n{blue}\n{green}\n\n");
        let stats = parse_backend_stats("x", "show stat", &reply).unwrap();
        assert_eq!(
            stats,
            BackendStats {
                blue: BackendCounters {
                    requests: 101,
                    failures: 0
                },
                green: BackendCounters {
                    requests: 99,
                    failures: 99 - 5 + 2
                },
            }
        );
        assert!(matches!(
            parse_backend_stats("x", "show stat", "No such proxy.\n\n"),
            Err(TrafficError::Command { .. })
        ));
        let only_blue = format!("{header}\n{blue}\n\n");
        let err = parse_backend_stats("x", "show stat", &only_blue).unwrap_err();
        assert!(err.to_string().contains("ep_x"), "{err}");
        assert!(matches!(
            parse_backend_stats("x", "show stat", "# pxname,svname\nep_x,blue\n"),
            Err(TrafficError::Protocol { .. })
        ));
    }
}
