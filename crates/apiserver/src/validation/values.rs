//! Syntax checks of single values (apimachinery's util/validation): they return the upstream
//! message on failure so the callers only add the field path.

use serde_json::Value;

use super::{Causes, join};

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn alnum_ends(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let ok = alnum_ends(s)
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok { Ok(()) } else { Err(LABEL_MSG.into()) }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let ok = s.split('.').all(|p| {
        alnum_ends(p)
            && p.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(SUBDOMAIN_MSG.into())
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the name part of qualified names and label values.
fn name_part_ok(s: &str) -> bool {
    alnum_ends(s)
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Label and annotation keys, finalizers: an optional DNS subdomain prefix and `/`, then a name
/// part of at most 63 characters.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        None => (None, s),
        Some((_, n)) if n.contains('/') => {
            return Err(format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'): {QUALIFIED_MSG}"
            ));
        }
        Some((p, n)) => (Some(p), n),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if name_part_ok(name) {
        Ok(())
    } else {
        Err(QUALIFIED_MSG.into())
    }
}

/// Label values: empty, or a name part of at most 63 characters.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if s.is_empty() || name_part_ok(s) {
        Ok(())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// Named ports: IANA service names, at most 15 lowercase alphanumerics and `-`, one letter.
pub fn port_name(s: &str) -> Result<(), String> {
    if s.len() > 15 {
        return Err("must be no more than 15 characters".into());
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Err("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// Environment variable names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn env_var_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit".into())
    }
}

/// ConfigMap and Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub fn config_map_key(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    if s == "." || s == ".." || s.starts_with("..") {
        return Err("must not be '.' or '..' or start with '..'".into());
    }
    let ok = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into())
    }
}

/// A string field checked by `check`, one cause at `field` when it fails.
pub fn check_str(c: &mut Causes, field: &str, v: &Value, check: fn(&str) -> Result<(), String>) {
    match v.as_str() {
        Some(s) => {
            if let Err(e) = check(s) {
                c.invalid(field.to_string(), v, &e);
            }
        }
        None => c.invalid(field.to_string(), v, "must be a string"),
    }
}

/// An optional integer at `obj[key]` that must be at least `min`.
pub fn min_int(c: &mut Causes, obj: Option<&Value>, prefix: &str, key: &str, min: i64) {
    let Some(v) = obj.and_then(|o| o.get(key)).filter(|v| !v.is_null()) else {
        return;
    };
    match v.as_i64() {
        Some(n) if n >= min => {}
        Some(_) => c.invalid(
            join(prefix, key),
            v,
            &format!("must be greater than or equal to {min}"),
        ),
        None => c.invalid(join(prefix, key), v, "must be an integer"),
    }
}

/// A port number: 1–65535.
pub fn port_number(c: &mut Causes, field: String, v: &Value) {
    if !v.as_i64().is_some_and(|p| (1..=65535).contains(&p)) {
        c.invalid(field, v, "must be between 1 and 65535, inclusive");
    }
}

/// IntOrString that is a count or a percentage (`maxSurge`, `minAvailable`): ≥ 0, ≤ 100%.
pub fn int_or_percent(c: &mut Causes, field: String, v: &Value) {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => {}
        Value::Number(_) => c.invalid(field, v, "must be greater than or equal to 0"),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok()) {
            Some(p) if p <= 100 => {}
            Some(_) => c.invalid(field, v, "must not be greater than 100%"),
            None => c.invalid(
                field,
                v,
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ),
        },
        _ => c.invalid(field, v, "must be an integer or percentage (e.g '5%')"),
    }
}

/// Whether an IntOrString count or percentage is zero.
pub fn is_zero(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s == "0%",
        _ => false,
    }
}

/// A resource quantity (`500m`, `1Gi`, `2e3`) as a number, or `None` when it does not parse.
pub fn quantity(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let (num, mult) = SUFFIXES
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
        .or_else(|| s.strip_suffix('E').map(|n| (n, 1e18)))
        .unwrap_or((s, 1.0));
    let ok = !num.is_empty()
        && num
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-' | b'e' | b'E'));
    if !ok {
        return None;
    }
    num.parse::<f64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        assert!(dns_label("web-1").is_ok());
        assert!(dns_label("Web").is_err());
        assert!(dns_subdomain("a.b-c").is_ok());
        assert!(qualified_name("example.com/My_Name").is_ok());
        assert!(qualified_name("a/b/c").is_err());
        assert!(qualified_name("/b").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("-x").is_err());
        assert!(port_name("http").is_ok());
        assert!(port_name("8080").is_err());
        assert!(env_var_name("1X").is_err());
        assert!(config_map_key("a b").is_err());
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("1Gi"), Some(1073741824.0));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("x"), None);
    }
}
