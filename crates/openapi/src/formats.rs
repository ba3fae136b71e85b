//! The `format`s kube-apiserver checks on custom resources' strings and numbers (a subset of
//! kube-openapi's strfmt registry: the common ones). Unknown formats pass, as upstream.

use serde_json::Value;

/// Does `s` have the string `format`?
pub(crate) fn valid_string(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uuid" => uuid(s, None),
        "uuid3" => uuid(s, Some(b'3')),
        "uuid4" => uuid(s, Some(b'4')),
        "uuid5" => uuid(s, Some(b'5')),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "hostname" => hostname(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "email" => email(s),
        _ => true,
    }
}

/// Does the number `v` have the numeric `format`?
pub(crate) fn valid_number(format: &str, v: &Value) -> bool {
    match format {
        "int32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "int64" => v.as_i64().is_some(),
        "float" => v.as_f64().is_some_and(|f| f.abs() <= f32::MAX as f64),
        _ => true,
    }
}

/// 8-4-4-4-12 hex digits; `version` the digit that starts the third group.
fn uuid(s: &str, version: Option<u8>) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && version.is_none_or(|v| b[14] == v)
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

fn email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && hostname(domain))
}
