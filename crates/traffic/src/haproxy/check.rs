//! Checks an operator's HAProxy before rotor drives it: what the zero-downtime guarantees rely
//! on, named setting by setting, so `rotor serve` refuses to start rather than promise what
//! that HAProxy cannot keep.
//!
//! From the runtime API: the socket is at level `admin` (weights are set through it). From the
//! configuration file (HAProxy 2.6's runtime API does not show its settings), for every
//! `backend ep_*` with the `defaults` section it inherits:
//!
//! - `mode http`: retries and the per-method rule below are HTTP features;
//! - servers `blue` and `green`: what rotor sets weights of;
//! - `timeout connect` and `timeout server`, the latter below the clients' timeout
//!   ([`crate::CLIENT_TIMEOUT`]): a hanging server becomes a 504 the gate counts, and a GET
//!   retried elsewhere, before clients give up on their own;
//! - `retries` ≥ 1 and `option redispatch`: a failed GET is retried on the other server;
//! - when `retry-on` retries more than connection failures, `http-request disable-l7-retry
//!   unless` naming only idempotent methods: a POST is never sent twice.
//!
//! The parser reads sections and their lines, nothing more; named `defaults` (`from`) are not
//! followed, and a proxy that uses them is checked against the last unnamed one.

use std::collections::HashSet;
use std::time::Duration;

/// What an operator's HAProxy lacks: where, which setting, and why rotor needs it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HAProxy {section}: {setting}: {reason}")]
pub struct ConfigProblem {
    /// `backend ep_x`, `global`, `runtime API`…
    pub section: String,
    /// The setting missing or wrong, as written in haproxy.cfg.
    pub setting: String,
    pub reason: String,
}

/// Methods HAProxy may send twice.
const IDEMPOTENT: [&str; 3] = ["METH_GET", "METH_HEAD", "METH_OPTIONS"];

/// One section of haproxy.cfg: its keyword and name, and its lines (trimmed, comments
/// dropped).
#[derive(Debug, Default, Clone)]
struct Section {
    kind: String,
    name: String,
    lines: Vec<String>,
}

impl Section {
    /// The last line that starts with `keyword` (whole words; HAProxy keeps the last), without
    /// the keyword.
    fn setting(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| {
            l.strip_prefix(keyword)
                .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
                .map(str::trim)
        })
    }

    fn title(&self) -> String {
        format!("{} {}", self.kind, self.name).trim().to_string()
    }
}

fn sections(config: &str) -> Vec<Section> {
    const KINDS: [&str; 6] = [
        "global", "defaults", "frontend", "backend", "listen", "peers",
    ];
    let mut out: Vec<Section> = Vec::new();
    for raw in config.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if KINDS.contains(&first) {
            out.push(Section {
                kind: first.to_string(),
                name: words.next().unwrap_or_default().to_string(),
                lines: Vec::new(),
            });
        } else if let Some(section) = out.last_mut() {
            section
                .lines
                .push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    out
}

/// A duration as HAProxy writes it (`500ms`, `8s`, `1m`; a bare number is milliseconds).
fn duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    Some(match unit {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86_400),
        _ => return None,
    })
}

/// Every problem of `config` (haproxy.cfg's text) for rotor's endpoints; empty when rotor can
/// keep its guarantees behind it.
pub fn check_config(config: &str) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut defaults = Section::default();
    let mut backends = 0;
    for section in sections(config) {
        match section.kind.as_str() {
            "defaults" => defaults = section,
            "backend" | "listen" if section.name.starts_with("ep_") => {
                backends += 1;
                problems.extend(check_backend(&section, &defaults));
            }
            _ => {}
        }
    }
    if backends == 0 {
        problems.push(ConfigProblem {
            section: "configuration".into(),
            setting: "backend ep_<endpoint>".into(),
            reason: "no backend named ep_<endpoint>: rotor drives one per Cluster's traffic \
                     endpoint, with servers blue and green"
                .into(),
        });
    }
    problems
}

/// `backend`'s problems, reading a setting from `defaults` where the backend has none.
fn check_backend(backend: &Section, defaults: &Section) -> Vec<ConfigProblem> {
    let get = |keyword: &str| {
        backend
            .setting(keyword)
            .or_else(|| defaults.setting(keyword))
    };
    let mut problems = Vec::new();
    let mut problem = |setting: &str, reason: String| {
        problems.push(ConfigProblem {
            section: backend.title(),
            setting: setting.to_string(),
            reason,
        })
    };
    if get("mode") != Some("http") {
        problem("mode http", "retries per method need HTTP mode".into());
    }
    let servers: HashSet<&str> = backend
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("server "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    for server in ["blue", "green"] {
        if !servers.contains(server) {
            problem(
                &format!("server {server}"),
                "rotor sets the weights of servers blue and green".into(),
            );
        }
    }
    if get("timeout connect").and_then(duration).is_none() {
        problem(
            "timeout connect",
            "unset: a server that does not accept would hold requests".into(),
        );
    }
    match get("timeout server").and_then(duration) {
        Some(t) if t < crate::CLIENT_TIMEOUT => {}
        found => problem(
            "timeout server",
            format!(
                "{}: must be below the clients' {:?}, so a hanging server is a counted 504 \
                 (and a GET retried) before clients give up",
                found.map_or("unset".into(), |t| format!("{t:?}")),
                crate::CLIENT_TIMEOUT
            ),
        ),
    }
    if get("retries")
        .and_then(|r| r.parse::<u32>().ok())
        .unwrap_or(0)
        == 0
    {
        problem(
            "retries",
            "must be at least 1: a failed GET is retried on the other server".into(),
        );
    }
    if get("option redispatch").is_none() {
        problem(
            "option redispatch",
            "unset: retries would go to the server that failed, not the other one".into(),
        );
    }
    if retries_past_connection(get("retry-on")) && !writes_never_retried(backend, defaults) {
        problem(
            "http-request disable-l7-retry",
            format!(
                "retry-on retries answered requests, so writes need `http-request \
                 disable-l7-retry unless {}` (a POST must never be sent twice)",
                IDEMPOTENT.join(" || ")
            ),
        );
    }
    problems
}

/// Whether `retry-on` (HAProxy's default: `conn-failure`) retries requests a server received.
fn retries_past_connection(retry_on: Option<&str>) -> bool {
    retry_on.is_some_and(|r| {
        r.split_whitespace()
            .any(|c| c != "conn-failure" && c != "none")
    })
}

/// A `disable-l7-retry unless` rule naming only idempotent methods, in the backend or defaults.
fn writes_never_retried(backend: &Section, defaults: &Section) -> bool {
    backend.lines.iter().chain(&defaults.lines).any(|l| {
        l.strip_prefix("http-request disable-l7-retry unless ")
            .is_some_and(|cond| {
                cond.split("||")
                    .map(str::trim)
                    .all(|m| IDEMPOTENT.contains(&m))
            })
    })
}

/// The runtime API's answer to `show cli level`, checked: rotor needs `admin`.
pub fn check_level(reply: &str) -> Result<(), ConfigProblem> {
    let level = reply.trim();
    if level == "admin" {
        return Ok(());
    }
    Err(ConfigProblem {
        section: "runtime API".into(),
        setting: "stats socket … level admin".into(),
        reason: format!("the socket is at level {level:?}: setting weights needs admin"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy::{ConfigOptions, EndpointConfig, render_config};

    fn rendered() -> String {
        let ep = EndpointConfig::new("x", "127.0.0.1:8080".parse().unwrap()).unwrap();
        render_config(
            &[ep],
            std::path::Path::new("/run/h.sock"),
            &ConfigOptions::default(),
        )
    }

    #[test]
    fn rotors_own_config_passes() {
        assert_eq!(check_config(&rendered()), Vec::new());
    }

    #[test]
    fn each_missing_setting_is_named() {
        let cases = [
            ("    option redispatch 1\n", "option redispatch"),
            ("    retries 3\n", "retries"),
            ("    timeout server 8000ms\n", "timeout server"),
            ("    timeout connect 2000ms\n", "timeout connect"),
            ("    mode http\n", "mode http"),
            (
                "    http-request disable-l7-retry unless METH_GET || METH_OPTIONS\n",
                "http-request disable-l7-retry",
            ),
            (
                "    server green 127.0.0.1:1 weight 0 disabled\n",
                "server green",
            ),
        ];
        let full = rendered();
        for (line, setting) in cases {
            assert!(full.contains(line), "{line:?} not in the rendered config");
            let problems = check_config(&full.replace(line, ""));
            assert_eq!(problems.len(), 1, "without {line:?}: {problems:?}");
            assert_eq!(problems[0].setting, setting);
            assert_eq!(problems[0].section, "backend ep_x");
        }
    }

    #[test]
    fn wrong_values_are_refused_with_why() {
        let full = rendered();
        let long = full.replace("timeout server 8000ms", "timeout server 30s");
        let problem = &check_config(&long)[0];
        assert!(
            problem.to_string().contains("30s: must be below"),
            "{problem}"
        );
        let posts = full.replace(
            "unless METH_GET || METH_OPTIONS",
            "unless METH_GET || METH_POST",
        );
        assert_eq!(
            check_config(&posts)[0].setting,
            "http-request disable-l7-retry"
        );
        // Retrying only connection failures needs no per-method rule.
        let conn_only = full
            .replace(
                "retry-on conn-failure empty-response response-timeout 500 501 502 503 504",
                "retry-on conn-failure",
            )
            .replace(
                "    http-request disable-l7-retry unless METH_GET || METH_OPTIONS\n",
                "",
            );
        assert_eq!(check_config(&conn_only), Vec::new());
        assert_eq!(check_config("global\n")[0].setting, "backend ep_<endpoint>");
    }

    #[test]
    fn the_runtime_api_must_be_admin() {
        assert!(check_level("admin\n\n").is_ok());
        let err = check_level("operator\n").unwrap_err();
        assert!(err.to_string().contains("level \"operator\""), "{err}");
    }

    #[test]
    fn durations_as_haproxy_writes_them() {
        assert_eq!(duration("500"), Some(Duration::from_millis(500)));
        assert_eq!(duration("8s"), Some(Duration::from_secs(8)));
        assert_eq!(duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(duration("x"), None);
    }
}
