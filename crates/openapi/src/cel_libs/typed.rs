//! Kubernetes' CEL object types (URL, IP, CIDR, Quantity) in cel-interpreter, which has no
//! opaque values: each is a map tagged with a key no JSON object can have, holding its
//! canonical text, so equal values compare equal and `self` never passes for one.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::Key;
use cel_interpreter::{ExecutionError, Value as Cel};

const TAG: &str = "\u{0}k8s-type";
const TEXT: &str = "\u{0}text";

/// A `kind` value (`"URL"`, `"IP"`…) whose canonical text is `text`.
pub(super) fn tagged(kind: &str, text: String) -> Cel {
    let mut map: HashMap<Key, Cel> = HashMap::new();
    map.insert(
        Key::String(Arc::new(TAG.into())),
        Cel::String(Arc::new(kind.into())),
    );
    map.insert(
        Key::String(Arc::new(TEXT.into())),
        Cel::String(Arc::new(text)),
    );
    Cel::Map(map.into())
}

/// The text of `v` if it is a `kind` value.
pub(super) fn text_of<'a>(v: &'a Cel, kind: &str) -> Option<&'a str> {
    let Cel::Map(m) = v else { return None };
    let get = |k: &str| match m.map.get(&Key::String(Arc::new(k.into()))) {
        Some(Cel::String(s)) => Some(s.as_str()),
        _ => None,
    };
    (get(TAG)? == kind).then_some(())?;
    get(TEXT)
}

/// The text of the `kind` receiver of `function`, or CEL's "no such overload".
pub(super) fn receiver<'a>(
    function: &str,
    v: &'a Cel,
    kind: &str,
) -> Result<&'a str, ExecutionError> {
    text_of(v, kind).ok_or_else(|| {
        ExecutionError::function_error(function, format!("no such overload: {kind} expected"))
    })
}

/// `string(x)` of a tagged value, or None for the interpreter's own conversion.
pub(super) fn to_string(v: &Cel) -> Option<String> {
    ["URL", "IP", "CIDR"]
        .iter()
        .find_map(|k| text_of(v, k))
        .map(str::to_string)
}
