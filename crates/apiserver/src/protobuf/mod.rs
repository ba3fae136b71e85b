//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) turned into the JSON a real
//! API server would have decoded them to. kubectl ≥1.32 (client-go) sends built-in kinds this
//! way for its imperative commands (`create configmap|secret|deployment|...`) and does not fall
//! back to JSON on a 415, so every built-in kind must decode.
//!
//! The body is `k8s\0` + a `runtime.Unknown` envelope {typeMeta {apiVersion, kind}, raw,
//! contentEncoding, contentType}; `raw` is the object's message. Decoding is driven by data, not
//! per-kind code: `table` is the field table of every Kubernetes message (tags, wire types, Go
//! JSON names, inline embedding, `required`), generated from k8s-pb and the OpenAPI
//! definitions by `tools/gen_protobuf.py`; `decode` walks a message with it. Types whose JSON
//! is not an object of their fields are special-cased by kind of type, not by field: Time and
//! MicroTime (RFC 3339), Duration (Go duration string), Quantity, IntOrString, RawExtension /
//! JSON / FieldsV1 (the embedded JSON), the JSONSchemaPropsOr* unions, and Go named slices
//! (ExtraValue, Verbs). `bytes` and `map<string, bytes>` (Secret.data, ConfigMap.binaryData)
//! become base64 strings, as in Go's JSON.
//!
//! Zero values. Go's protobuf marshaller writes every non-pointer field, set or not, so a zero
//! string/number/bool on the wire usually means "unset", and Go's JSON would leave it out
//! (`omitempty`). The decoder drops zero scalars and zero Times unless the schema lists the field
//! as `required`. Messages are kept even when empty, as Go's JSON prints them (`status: {}`,
//! `resources: {}`; a pointer message is on the wire only when set). Known loss: a *pointer*
//! scalar set to its zero value has the same bytes as an unset non-pointer one. Where the
//! upstream documentation says a zero differs from unset (a "pointer to distinguish between
//! explicit zero and not specified", a non-zero default such as `replicas` "Defaults to 1", or
//! a meaning given to zero) the generator marks the field and the zero is kept — so
//! `kubectl create deployment --replicas=0` stores 0. Other pointer scalars set to zero
//! without such documentation (e.g. `job.spec.parallelism: 0`, a PVC's `storageClassName: ""`)
//! arrive as unset.
//!
//! Custom resources have no protobuf form (as in Kubernetes): 415 naming the kind. A body that
//! is not valid protobuf for its kind is a 400 naming the kind and the field.

mod decode;
mod table;
mod wire;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

/// Every Kubernetes protobuf body starts with these four bytes.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a create/update body sent as `application/vnd.kubernetes.protobuf` into the JSON
/// object the rest of the server handles.
pub fn decode_object(body: &[u8], res: &Resource) -> ApiResult<Value> {
    if res.is_custom() {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (custom resources such as {}.{} have no protobuf form)",
            res.kind, res.group
        )));
    }
    let bad = |what: String| {
        ApiError::bad_request(format!(
            "the protobuf body is not a valid {}: {what}",
            res.kind
        ))
    };
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s\\0 magic".into()))?;
    let table = table::table().map_err(ApiError::internal)?;
    let env = decode::envelope(inner).map_err(|e| bad(e.problem))?;
    if !env.content_encoding.is_empty() {
        return Err(ApiError::unsupported_media_type(format!(
            "the protobuf body's content encoding {:?} is not supported",
            env.content_encoding
        )));
    }
    let id = table.kind(&env.api_version, &env.kind).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "{} {} has no protobuf form known to this server; send it as application/json",
            env.api_version, env.kind
        ))
    })?;
    decode::object(table, &env, id, 0).map_err(|e| {
        let path = e.path();
        ApiError::bad_request(if path.is_empty() {
            format!(
                "the protobuf body is not a valid {}: {}",
                env.kind, e.problem
            )
        } else {
            format!(
                "the protobuf body is not a valid {}: {path}: {}",
                env.kind, e.problem
            )
        })
    })
}

#[cfg(test)]
mod tests;
