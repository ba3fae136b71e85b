//! One message's bytes → the JSON Go's `encoding/json` would print for the same Go value, driven
//! by the field table: JSON names, inline embedding, the special types, and which zero values
//! to drop (see the module docs of `protobuf` for the zero-value policy).

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::MAGIC;
use super::table::{Field, MapValue, MessageId, Special, Table, Type};
use super::wire::{self, Wire};

/// Messages nested deeper than this are refused (recursion is bounded; real objects stay far
/// below: a CRD schema of 20 levels is about 40 messages deep).
pub(super) const MAX_DEPTH: usize = 100;

/// What was wrong, and where: `spec.template.spec.containers[0].ports[1].containerPort`.
#[derive(Debug)]
pub(super) struct DecodeError {
    /// Innermost segment first (segments are pushed while the error travels up).
    path: Vec<String>,
    pub problem: String,
}

impl DecodeError {
    fn new(problem: impl Into<String>) -> Self {
        DecodeError {
            path: Vec::new(),
            problem: problem.into(),
        }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        let segment = segment.into();
        if !segment.is_empty() {
            self.path.push(segment);
        }
        self
    }

    pub(super) fn path(&self) -> String {
        let mut out = String::new();
        for s in self.path.iter().rev() {
            if !out.is_empty() && !s.starts_with('[') {
                out.push('.');
            }
            out.push_str(s);
        }
        out
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

/// The `runtime.Unknown` envelope around every protobuf object.
pub(super) struct Envelope<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
    pub content_encoding: String,
}

/// Reads the envelope (the bytes after the `k8s\0` magic): typeMeta = 1 {apiVersion = 1,
/// kind = 2}, raw = 2, contentEncoding = 3, contentType = 4.
pub(super) fn envelope(buf: &[u8]) -> Result<Envelope<'_>> {
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
    };
    for item in wire::fields(buf) {
        let (tag, w) = item.map_err(|e| DecodeError::new(format!("envelope: {e}")))?;
        match tag {
            1 => {
                let tm = len(w).map_err(|e| e.at("typeMeta"))?;
                for item in wire::fields(tm) {
                    let (tag, w) = item.map_err(|e| DecodeError::new(e).at("typeMeta"))?;
                    match tag {
                        1 => env.api_version = string(w).map_err(|e| e.at("apiVersion"))?,
                        2 => env.kind = string(w).map_err(|e| e.at("kind"))?,
                        _ => {}
                    }
                }
            }
            2 => env.raw = len(w).map_err(|e| e.at("raw"))?,
            3 => env.content_encoding = string(w).map_err(|e| e.at("contentEncoding"))?,
            _ => {}
        }
    }
    if env.api_version.is_empty() || env.kind.is_empty() {
        return Err(DecodeError::new(
            "the envelope (runtime.Unknown) names no apiVersion and kind",
        ));
    }
    Ok(env)
}

/// The object in an envelope, as JSON with its apiVersion and kind first.
pub(super) fn object(t: &Table, env: &Envelope<'_>, id: MessageId, depth: usize) -> Result<Value> {
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(env.api_version.clone()));
    obj.insert("kind".into(), Value::String(env.kind.clone()));
    match message(t, id, env.raw, depth)? {
        Some(Value::Object(fields)) => obj.extend(fields),
        _ => return Err(DecodeError::new("the object is not a message")),
    }
    Ok(Value::Object(obj))
}

/// A message as JSON; None when Go would print `null` (a zero Time, an empty RawExtension).
pub(super) fn message(t: &Table, id: MessageId, buf: &[u8], depth: usize) -> Result<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::new(format!(
            "messages nested more than {MAX_DEPTH} deep"
        )));
    }
    let msg = &t.messages[id];
    if let Some(special) = msg.special {
        return self::special(t, id, special, buf, depth);
    }
    let mut obj = Map::new();
    for item in wire::fields(buf) {
        let (tag, w) = item.map_err(DecodeError::new)?;
        // Unknown fields (a newer client's) are skipped, as Go's unmarshaller does.
        let Some(f) = msg.field(tag) else { continue };
        field(t, f, w, &mut obj, depth).map_err(|e| e.at(f.json.as_str()))?;
    }
    Ok(Some(Value::Object(obj)))
}

fn field(
    t: &Table,
    f: &Field,
    w: Wire<'_>,
    obj: &mut Map<String, Value>,
    depth: usize,
) -> Result<()> {
    if let Type::Map(value) = f.ty {
        let (k, v) = map_entry(t, value, len(w)?, depth)?;
        let map = obj
            .entry(f.json.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        if let Some(m) = map.as_object_mut() {
            m.insert(k, v);
        }
        return Ok(());
    }
    if f.repeated {
        let start = obj
            .get(&f.json)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let values = match (f.ty, w) {
            // Packed numbers: one length-delimited run (Go writes them unpacked; both are valid).
            (Type::Bool | Type::Int32 | Type::Int64 | Type::Double, Wire::Len(run)) => {
                packed(f.ty, run).map_err(|e| e.at(format!("[{start}]")))?
            }
            _ => vec![
                single(t, f.ty, w, depth)
                    .map_err(|e| e.at(format!("[{start}]")))?
                    .unwrap_or(Value::Null),
            ],
        };
        let list = obj
            .entry(f.json.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Some(list) = list.as_array_mut() {
            list.extend(values);
        }
        return Ok(());
    }
    let value = single(t, f.ty, w, depth)?;
    if f.inline {
        if let Some(Value::Object(inner)) = value {
            obj.extend(inner);
        }
        return Ok(());
    }
    match value {
        Some(v) if f.required || f.keep_zero || !is_zero(f.ty, &v) => {
            // A message field sent twice is merged, as protobuf specifies; anything else: last wins.
            match (obj.get_mut(&f.json), v) {
                (Some(Value::Object(old)), Value::Object(new))
                    if matches!(f.ty, Type::Message(_)) =>
                {
                    old.extend(new)
                }
                (_, v) => {
                    obj.insert(f.json.clone(), v);
                }
            }
        }
        _ => {
            obj.remove(&f.json);
        }
    }
    Ok(())
}

/// A zero scalar: what Go's marshaller writes for an unset non-pointer field, and what
/// `omitempty` leaves out of the JSON. Messages are never zero here: Go's JSON prints
/// non-pointer structs even when empty, and pointer ones are on the wire only when set.
fn is_zero(ty: Type, v: &Value) -> bool {
    match ty {
        Type::String | Type::Bytes => v.as_str().is_some_and(str::is_empty),
        Type::Bool => v == &Value::Bool(false),
        Type::Int32 | Type::Int64 | Type::Double => v.as_f64() == Some(0.0),
        Type::Message(_) | Type::Map(_) => false,
    }
}

fn single(t: &Table, ty: Type, w: Wire<'_>, depth: usize) -> Result<Option<Value>> {
    Ok(Some(match (ty, w) {
        (Type::String, Wire::Len(b)) => Value::String(utf8(b)?),
        (Type::Bytes, Wire::Len(b)) => Value::String(base64(b)),
        (Type::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Go reads an int32 varint as the low 32 bits (negatives arrive sign-extended).
        (Type::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Type::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Type::Double, Wire::Fixed64(bits)) => double(f64::from_bits(bits))?,
        (Type::Message(id), Wire::Len(b)) => return message(t, id, b, depth + 1),
        (ty, w) => return Err(wrong_wire(ty, w)),
    }))
}

fn packed(ty: Type, mut run: &[u8]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < run.len() {
        out.push(match ty {
            Type::Double => {
                let Some((bytes, rest)) = run.split_first_chunk::<8>() else {
                    return Err(DecodeError::new("truncated packed double"));
                };
                run = rest;
                double(f64::from_le_bytes(*bytes))?
            }
            _ => {
                let v = wire::varint(run, &mut pos).map_err(DecodeError::new)?;
                match ty {
                    Type::Bool => Value::Bool(v != 0),
                    Type::Int32 => Value::from(v as i32),
                    _ => Value::from(v as i64),
                }
            }
        });
    }
    Ok(out)
}

/// A map entry: key = 1, value = 2; a missing part is its type's zero value.
fn map_entry(t: &Table, value: MapValue, buf: &[u8], depth: usize) -> Result<(String, Value)> {
    let mut key = String::new();
    let mut raw = None;
    for item in wire::fields(buf) {
        let (tag, w) = item.map_err(DecodeError::new)?;
        match tag {
            1 => key = string(w).map_err(|e| e.at("(key)"))?,
            2 => raw = Some(w),
            _ => {}
        }
    }
    let at = |e: DecodeError| e.at(format!("[{key}]"));
    let v = match (value, raw) {
        (MapValue::String, None) | (MapValue::Bytes, None) => Value::String(String::new()),
        (MapValue::String, Some(w)) => Value::String(string(w).map_err(at)?),
        (MapValue::Bytes, Some(w)) => Value::String(base64(len(w).map_err(at)?)),
        (MapValue::Message(id), w) => {
            let b = match w {
                Some(w) => len(w).map_err(at)?,
                None => &[],
            };
            message(t, id, b, depth + 1)
                .map_err(at)?
                .unwrap_or(Value::Null)
        }
    };
    Ok((key, v))
}

fn special(
    t: &Table,
    id: MessageId,
    special: Special,
    buf: &[u8],
    depth: usize,
) -> Result<Option<Value>> {
    let msg = &t.messages[id];
    let items = wire::fields(buf)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DecodeError::new)?;
    let last = |tag: u32| items.iter().rev().find(|(n, _)| *n == tag).map(|(_, w)| *w);
    let all = |tag: u32| {
        items
            .iter()
            .filter(move |(n, _)| *n == tag)
            .map(|(_, w)| *w)
    };
    // A sub-field decoded through the table's own type for it (JSONSchemaProps, strings...).
    let sub = |tag: u32, w: Wire<'_>| -> Result<Option<Value>> {
        match msg.field(tag) {
            Some(f) => single(t, f.ty, w, depth),
            None => Err(DecodeError::new(format!("{} has no field {tag}", msg.name))),
        }
    };
    let list = |tag: u32| -> Result<Vec<Value>> {
        all(tag)
            .enumerate()
            .map(|(i, w)| {
                Ok(sub(tag, w)
                    .map_err(|e| e.at(format!("[{i}]")))?
                    .unwrap_or(Value::Null))
            })
            .collect()
    };
    Ok(match special {
        Special::Time | Special::MicroTime => {
            let seconds = int(last(1))?;
            let nanos = int(last(2))? as i32;
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            Some(Value::String(rfc3339(
                seconds,
                nanos,
                special == Special::MicroTime,
            )?))
        }
        Special::Duration => Some(Value::String(go_duration(int(last(1))?))),
        Special::Quantity => {
            let s = last(1).map(string).transpose()?.unwrap_or_default();
            // Go prints the zero Quantity as "0".
            Some(Value::String(if s.is_empty() { "0".into() } else { s }))
        }
        Special::IntOrString => match int(last(1))? {
            0 => Some(Value::from(int(last(2))? as i32)),
            1 => Some(Value::String(
                last(3).map(string).transpose()?.unwrap_or_default(),
            )),
            other => {
                return Err(DecodeError::new(format!(
                    "IntOrString type {other} is neither 0 (int) nor 1 (string)"
                )));
            }
        },
        Special::Raw => {
            let raw = last(1).map(len).transpose()?.unwrap_or_default();
            if raw.is_empty() {
                return Ok(None);
            }
            Some(embedded(t, raw, depth)?)
        }
        Special::OrArray => {
            let schemas = list(2)?;
            match last(1) {
                _ if !schemas.is_empty() => Some(Value::Array(schemas)),
                Some(w) => sub(1, w)?,
                None => None,
            }
        }
        Special::OrBool => match last(2) {
            Some(w) => sub(2, w)?,
            None => Some(Value::Bool(int(last(1))? != 0)),
        },
        Special::OrStringArray => {
            let property = list(2)?;
            match last(1) {
                _ if !property.is_empty() => Some(Value::Array(property)),
                Some(w) => sub(1, w)?,
                None => None,
            }
        }
        Special::Items => Some(Value::Array(list(1)?)),
    })
}

/// The bytes of a RawExtension / JSON / FieldsV1: JSON, or (a client that embedded an object in
/// its protobuf form) another `k8s\0` envelope.
fn embedded(t: &Table, raw: &[u8], depth: usize) -> Result<Value> {
    if let Some(inner) = raw.strip_prefix(MAGIC) {
        let env = envelope(inner)?;
        let id = t.kind(&env.api_version, &env.kind).ok_or_else(|| {
            DecodeError::new(format!(
                "the embedded {} {} has no protobuf form known to this server",
                env.api_version, env.kind
            ))
        })?;
        return object(t, &env, id, depth + 1);
    }
    serde_json::from_slice(raw)
        .map_err(|e| DecodeError::new(format!("the embedded object is not JSON: {e}")))
}

fn len(w: Wire<'_>) -> Result<&[u8]> {
    match w {
        Wire::Len(b) => Ok(b),
        w => Err(DecodeError::new(format!(
            "wire type {}, expected length-delimited",
            w.name()
        ))),
    }
}

fn string(w: Wire<'_>) -> Result<String> {
    utf8(len(w)?)
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::new("a string that is not UTF-8"))
}

/// A varint sub-field of a special message; absent is 0.
fn int(w: Option<Wire<'_>>) -> Result<i64> {
    match w {
        None => Ok(0),
        Some(Wire::Varint(v)) => Ok(v as i64),
        Some(w) => Err(DecodeError::new(format!(
            "wire type {}, expected varint",
            w.name()
        ))),
    }
}

fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A JSON number as Go prints a float64: integral values without a fraction.
fn double(f: f64) -> Result<Value> {
    if !f.is_finite() {
        return Err(DecodeError::new(format!("{f} has no JSON form")));
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::from(f as i64));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| DecodeError::new(format!("{f} has no JSON form")))
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Bool => "bool",
        Type::Int32 => "int32",
        Type::Int64 => "int64",
        Type::Double => "double",
        Type::Message(_) => "message",
        Type::Map(_) => "map",
    }
}

fn wrong_wire(ty: Type, w: Wire<'_>) -> DecodeError {
    DecodeError::new(format!(
        "wire type {} cannot carry a {}",
        w.name(),
        type_name(ty)
    ))
}

/// `metav1.Time` (to the second) and `metav1.MicroTime` (to the microsecond), in UTC, as Go's
/// RFC 3339 layouts print them. Go refuses years outside 0000–9999; so does this.
fn rfc3339(seconds: i64, nanos: i32, micro: bool) -> Result<String> {
    let out_of_range = || DecodeError::new(format!("time {seconds}s {nanos}ns is out of range"));
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(out_of_range)?;
    let t = chrono::DateTime::from_timestamp(seconds, nanos).ok_or_else(out_of_range)?;
    if !(0..=9999).contains(&chrono::Datelike::year(&t)) {
        return Err(out_of_range());
    }
    Ok(if micro {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    })
}

/// A `time.Duration` as Go's `String()` prints it: "1h2m3.5s", "1.5ms", "0s".
pub(super) fn go_duration(ns: i64) -> String {
    fn decimal(v: u64, scale: u64) -> String {
        let (whole, frac) = (v / scale, v % scale);
        if frac == 0 {
            return whole.to_string();
        }
        let digits = scale.ilog10() as usize;
        let frac = format!("{frac:0digits$}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", decimal(u, scale));
    }
    let secs = u / 1_000_000_000;
    let (h, m) = (secs / 3600, secs / 60 % 60);
    let s = decimal(secs % 60 * 1_000_000_000 + u % 1_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}
