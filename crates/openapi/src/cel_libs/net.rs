//! Kubernetes' CEL URL, IP and CIDR libraries (k8s.io/apiserver/pkg/cel/library url.go, ip.go,
//! cidr.go): `url()` parses as Go's `url.ParseRequestURI` (an absolute URI or an absolute
//! path), `ip()` and `cidr()` as `netip` does, refusing IPv4-mapped IPv6 addresses and zones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cel_interpreter::extractors::This;
use cel_interpreter::{Context, ExecutionError, Value as Cel};

use super::typed::{receiver, tagged};

type Str = Arc<String>;
type Res = Result<Cel, ExecutionError>;

pub(super) fn register(ctx: &mut Context) {
    ctx.add_function("url", |This(s): This<Str>| -> Res {
        let u = Url::parse(&s).map_err(|e| ExecutionError::function_error("url", e))?;
        Ok(tagged("URL", u.raw))
    });
    ctx.add_function("isURL", |This(s): This<Str>| Url::parse(&s).is_ok());
    ctx.add_function("getScheme", |This(u): This<Cel>| {
        url_part(&u, "getScheme", |u| u.scheme)
    });
    ctx.add_function("getHost", |This(u): This<Cel>| {
        url_part(&u, "getHost", |u| u.host)
    });
    ctx.add_function("getHostname", |This(u): This<Cel>| {
        url_part(&u, "getHostname", |u| split_host_port(&u.host).0)
    });
    ctx.add_function("getPort", |This(u): This<Cel>| {
        url_part(&u, "getPort", |u| split_host_port(&u.host).1)
    });
    ctx.add_function("getEscapedPath", |This(u): This<Cel>| {
        url_part(&u, "getEscapedPath", |u| escaped_path(&u.path))
    });
    ctx.add_function("getQuery", |This(u): This<Cel>| -> Res {
        let u = Url::parse(receiver("getQuery", &u, "URL")?).map_err(bad_state)?;
        Ok(query(&u.query))
    });
    ctx.add_function("ip", |This(v): This<Cel>| -> Res {
        match &v {
            Cel::String(s) => Ok(tagged("IP", parse_ip(s)?.to_string())),
            _ => {
                let cidr = parse_cidr(receiver("ip", &v, "CIDR")?)?;
                Ok(tagged("IP", cidr.0.to_string()))
            }
        }
    });
    ctx.add_function("isIP", |This(s): This<Str>| parse_ip(&s).is_ok());
    ctx.add_function("family", |This(v): This<Cel>| -> Res {
        Ok(Cel::Int(if ip_of("family", &v)?.is_ipv4() { 4 } else { 6 }))
    });
    ctx.add_function("isUnspecified", |This(v): This<Cel>| -> Res {
        Ok(Cel::Bool(ip_of("isUnspecified", &v)?.is_unspecified()))
    });
    ctx.add_function("isLoopback", |This(v): This<Cel>| -> Res {
        Ok(Cel::Bool(ip_of("isLoopback", &v)?.is_loopback()))
    });
    ctx.add_function("isLinkLocalMulticast", |This(v): This<Cel>| -> Res {
        Ok(Cel::Bool(link_local_multicast(ip_of(
            "isLinkLocalMulticast",
            &v,
        )?)))
    });
    ctx.add_function("isLinkLocalUnicast", |This(v): This<Cel>| -> Res {
        Ok(Cel::Bool(link_local_unicast(ip_of(
            "isLinkLocalUnicast",
            &v,
        )?)))
    });
    ctx.add_function("isGlobalUnicast", |This(v): This<Cel>| -> Res {
        Ok(Cel::Bool(global_unicast(ip_of("isGlobalUnicast", &v)?)))
    });
    ctx.add_function("cidr", |This(s): This<Str>| -> Res {
        let (ip, bits) = parse_cidr(&s)?;
        Ok(tagged("CIDR", format!("{ip}/{bits}")))
    });
    ctx.add_function("isCIDR", |This(s): This<Str>| parse_cidr(&s).is_ok());
    ctx.add_function("prefixLength", |This(v): This<Cel>| -> Res {
        let (_, bits) = parse_cidr(receiver("prefixLength", &v, "CIDR")?)?;
        Ok(Cel::Int(i64::from(bits)))
    });
    ctx.add_function("masked", |This(v): This<Cel>| -> Res {
        let (ip, bits) = parse_cidr(receiver("masked", &v, "CIDR")?)?;
        Ok(tagged("CIDR", format!("{}/{bits}", mask(ip, bits))))
    });
    ctx.add_function("containsIP", |This(v): This<Cel>, other: Cel| -> Res {
        let (net, bits) = parse_cidr(receiver("containsIP", &v, "CIDR")?)?;
        let ip = match &other {
            Cel::String(s) => parse_ip(s)?,
            _ => ip_of("containsIP", &other)?,
        };
        Ok(Cel::Bool(contains(net, bits, ip)))
    });
    ctx.add_function("containsCIDR", |This(v): This<Cel>, other: Cel| -> Res {
        let (net, bits) = parse_cidr(receiver("containsCIDR", &v, "CIDR")?)?;
        let (ip, other_bits) = match &other {
            Cel::String(s) => parse_cidr(s)?,
            _ => parse_cidr(receiver("containsCIDR", &other, "CIDR")?)?,
        };
        Ok(Cel::Bool(bits <= other_bits && contains(net, bits, ip)))
    });
}

fn bad_state(e: String) -> ExecutionError {
    ExecutionError::function_error("url", e)
}

/// A string part of the URL receiver.
fn url_part(v: &Cel, function: &str, part: impl Fn(Url) -> String) -> Res {
    let u = Url::parse(receiver(function, v, "URL")?).map_err(bad_state)?;
    Ok(Cel::String(Arc::new(part(u))))
}

/// The parts of a URL `url.ParseRequestURI` accepted, as written.
struct Url {
    raw: String,
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Url {
    fn parse(raw: &str) -> Result<Url, String> {
        let fail = |m: &str| Err(format!("parse {raw:?}: {m}"));
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return fail("net/url: invalid control character in URL");
        }
        if raw.is_empty() {
            return fail("empty url");
        }
        let mut u = Url {
            raw: raw.to_string(),
            scheme: String::new(),
            host: String::new(),
            path: String::new(),
            query: String::new(),
        };
        if raw == "*" {
            u.path = "*".into();
            return Ok(u);
        }
        let (scheme, mut rest) = match scheme_of(raw) {
            Ok(parts) => parts,
            Err(e) => return fail(e),
        };
        u.scheme = scheme.to_ascii_lowercase();
        if rest.ends_with('?') && rest.matches('?').count() == 1 {
            rest = &rest[..rest.len() - 1];
        } else if let Some((before, q)) = rest.split_once('?') {
            u.query = q.to_string();
            rest = before;
        }
        if !rest.starts_with('/') {
            if !u.scheme.is_empty() {
                return Ok(u); // opaque, as `mailto:x@example.com`
            }
            return fail("invalid URI for request");
        }
        if !u.scheme.is_empty()
            && let Some(after) = rest.strip_prefix("//")
        {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if let Err(e) = check_host(host) {
                return fail(&e);
            }
            u.host = host.to_string();
            rest = path;
        }
        if !valid_escapes(rest) {
            return fail("invalid URL escape");
        }
        u.path = rest.to_string();
        Ok(u)
    }
}

/// `scheme:` at the start, if any: letters, then letters, digits, `+`, `-`, `.`.
fn scheme_of(raw: &str) -> Result<(&str, &str), &'static str> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// A host with an optional port: `[v6]:port`, or `name:port` with digits after the colon.
fn check_host(host: &str) -> Result<(), String> {
    let port = if let Some(inner) = host.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return Err("missing ']' in host".into());
        };
        &inner[end + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    if !port.is_empty() && !valid_port(port) {
        return Err(format!("invalid port {port:?} after host"));
    }
    if !valid_escapes(host) {
        return Err("invalid URL escape".into());
    }
    Ok(())
}

/// `:` followed by digits only (Go's `validOptionalPort`).
fn valid_port(port: &str) -> bool {
    port.strip_prefix(':')
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
}

/// Host and port as `url.Hostname()` and `url.Port()` split them.
fn split_host_port(host: &str) -> (String, String) {
    let (mut name, mut port) = (host, "");
    if let Some(colon) = host.rfind(':')
        && valid_port(&host[colon..])
    {
        (name, port) = (&host[..colon], &host[colon + 1..]);
    }
    if name.starts_with('[') && name.ends_with(']') {
        name = &name[1..name.len() - 1];
    }
    (name.to_string(), port.to_string())
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 2;
        }
        i += 1;
    }
    true
}

/// The path as `url.EscapedPath()` gives it: as written where that is a valid encoding, the
/// rest percent-encoded.
fn escaped_path(path: &str) -> String {
    let keep = |c: u8| c.is_ascii_alphanumeric() || b"-._~$&+,/:;=@!'()*[]%".contains(&c);
    let mut out = String::with_capacity(path.len());
    for &c in path.as_bytes() {
        if keep(c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// `url.Query()`: each key's values in order; pairs that do not decode (or hold `;`) are
/// left out, as Go does.
fn query(raw: &str) -> Cel {
    let mut map: HashMap<String, Vec<Cel>> = HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty() && !p.contains(';')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (unescape_query(k), unescape_query(v)) {
            map.entry(k).or_default().push(Cel::String(Arc::new(v)));
        }
    }
    let map: HashMap<String, Cel> = map
        .into_iter()
        .map(|(k, v)| (k, Cel::List(Arc::new(v))))
        .collect();
    map.into()
}

fn unescape_query(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// An address as `ip()` accepts it: no zone, no IPv4-mapped IPv6.
fn parse_ip(s: &str) -> Result<IpAddr, ExecutionError> {
    let fail = |m: &str| {
        ExecutionError::function_error(
            "ip",
            format!("IP Address {s:?} parse error during conversion from string: {m}"),
        )
    };
    let ip: IpAddr = s.parse().map_err(|_| fail("not an IP address"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(fail("IPv4-mapped IPv6 addresses are not allowed"));
    }
    Ok(ip)
}

fn ip_of(function: &str, v: &Cel) -> Result<IpAddr, ExecutionError> {
    parse_ip(receiver(function, v, "IP")?)
}

/// `addr/bits` as `cidr()` accepts it; the address is kept as written (not masked).
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), ExecutionError> {
    let fail = || {
        ExecutionError::function_error(
            "cidr",
            format!("network address {s:?} parse error during conversion from string"),
        )
    };
    let (ip, bits) = s.split_once('/').ok_or_else(fail)?;
    let ip = parse_ip(ip).map_err(|_| fail())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let canonical = bits.len() == 1 || !bits.starts_with('0');
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= max && canonical)
        .ok_or_else(fail)?;
    Ok((ip, bits))
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    let keep = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits.min(128)))
    };
    match ip {
        IpAddr::V4(_) => {
            let m = keep >> 96 << 96;
            IpAddr::V4(std::net::Ipv4Addr::from(((bits_of(ip) & m) >> 96) as u32))
        }
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits_of(ip) & keep)),
    }
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && mask(net, bits) == mask(ip, bits)
}

fn link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.octets()[0] == 0xff && v6.octets()[1] & 0x0f == 0x02,
    }
}

fn link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// netip's `IsGlobalUnicast`: private ranges count; unspecified, broadcast, loopback,
/// multicast and link-local do not.
fn global_unicast(ip: IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified()
        || broadcast
        || ip.is_loopback()
        || ip.is_multicast()
        || link_local_unicast(ip))
}
