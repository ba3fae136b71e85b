//! The runtime API's replies: batched replies split per command, `get weight`, `show servers
//! state`, `show stat` (CSV) and the error lines HAProxy answers with.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::backend_name;
use crate::{Backend, BackendCounters, BackendStats, Sessions, TrafficError};

/// HAProxy admin-state bits (`srv_admin_state` in `show servers state`): forced and inherited
/// maintenance. Either one means the server takes no traffic.
const ADMF_FMAINT: u32 = 0x01;
const ADMF_IMAINT: u32 = 0x02;

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
pub(super) fn split_replies(reply: &str, expected: usize) -> Vec<String> {
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
pub(super) fn parse_get_weight(
    endpoint: &str,
    command: &str,
    reply: &str,
) -> Result<u8, TrafficError> {
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
pub(super) fn rejection(reply: &str) -> Option<&str> {
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
pub(super) fn expect_silent(
    endpoint: &str,
    command: &str,
    reply: &str,
) -> Result<(), TrafficError> {
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

pub(super) fn parse_servers_state(
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
pub(super) fn settled(first: BackendStats, second: BackendStats) -> BackendStats {
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
    const COLUMNS: [&str; 6] = [
        "stot", "scur", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "srv_abrt",
    ];
    let rows = server_rows(endpoint, command, reply, COLUMNS)?;
    let counters = |[stot, scur, ok2, ok3, ok4, aborted]: [u64; 6]| BackendCounters {
        requests: stot,
        failures: stot
            .saturating_sub(scur)
            .saturating_sub(ok2.saturating_add(ok3).saturating_add(ok4))
            .saturating_add(aborted)
            .min(stot),
    };
    Ok(BackendStats {
        blue: counters(rows[0]),
        green: counters(rows[1]),
    })
}

/// [`Sessions`] from the same reply as [`parse_backend_stats`]: each server's `scur`, its
/// sessions open now (requests in flight and streams alike).
pub fn parse_sessions(
    endpoint: &str,
    command: &str,
    reply: &str,
) -> Result<Sessions, TrafficError> {
    let [[blue], [green]] = server_rows(endpoint, command, reply, ["scur"])?;
    Ok(Sessions { blue, green })
}

/// The named numeric columns of servers `blue` and `green` (in that order) of `endpoint`'s
/// backend in a `show stat` CSV reply; columns are found by name in its `# pxname,…` header.
fn server_rows<const N: usize>(
    endpoint: &str,
    command: &str,
    reply: &str,
    names: [&str; N],
) -> Result<[[u64; N]; 2], TrafficError> {
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
    let mut wanted = [0usize; N];
    for (slot, name) in wanted.iter_mut().zip(names) {
        *slot = col(name)?;
    }
    let backend = backend_name(endpoint);
    let mut found: [Option<[u64; N]>; 2] = [None, None];
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
        let mut row = [0u64; N];
        for (value, &i) in row.iter_mut().zip(&wanted) {
            // HAProxy leaves a counter empty when it does not apply; that is a 0.
            let field = fields[i].trim();
            *value = if field.is_empty() {
                0
            } else {
                field.parse().map_err(|_| protocol())?
            };
        }
        found[slot] = Some(row);
    }
    match found {
        [Some(blue), Some(green)] => Ok([blue, green]),
        _ => Err(TrafficError::Command {
            endpoint: endpoint.to_string(),
            command: command.to_string(),
            message: format!("backend {backend} lacks server blue or green in `show stat`"),
        }),
    }
}

/// `show info`'s `Pid` and `Start_time_sec`, as `PID@START`: together they change whenever
/// another worker answers (a restart, or a reload that reads the config file afresh).
pub(super) fn parse_epoch(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    Some(format!("{}@{}", field("Pid")?, field("Start_time_sec")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_the_workers_pid_and_start_time() {
        let info = "Name: HAProxy\nVersion: 2.6.12\nPid: 25089\nUptime_sec: 0\nStart_time_sec: 1796582445\n";
        assert_eq!(parse_epoch(info).as_deref(), Some("25089@1796582445"));
        // HAProxy before 2.6 has no start time: no epoch, rather than a pid alone (pid 1 in
        // every container restart would look like the same worker).
        assert_eq!(parse_epoch("Pid: 1\nUptime_sec: 3\n"), None);
        assert_eq!(parse_epoch("Unknown command\n"), None);
    }

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
        let sessions = parse_sessions("x", "show stat", &reply).unwrap();
        assert_eq!(sessions, Sessions { blue: 1, green: 0 });
        let only_blue = format!("{header}\n{blue}\n\n");
        let err = parse_backend_stats("x", "show stat", &only_blue).unwrap_err();
        assert!(err.to_string().contains("ep_x"), "{err}");
        assert!(matches!(
            parse_backend_stats("x", "show stat", "# pxname,svname\nep_x,blue\n"),
            Err(TrafficError::Protocol { .. })
        ));
    }
}
