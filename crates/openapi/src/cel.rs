//! `x-kubernetes-validations` CEL rules of custom resources' schemas, with cel-interpreter
//! (cel-rust's interpreter on a lalrpop parser: no ANTLR runtime to compile). Each rule is
//! compiled once — when its CRD is registered, which also refuses rules that do not compile —
//! and kept process-wide by its text; requests only evaluate. Transition rules (those naming
//! `oldSelf`) run on update only, when the old value exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel_interpreter::{Context, Program, Value as Cel};
use serde_json::Value;

/// Compiled rules kept process-wide by their text (cleared when full; a CRD has a handful).
const CACHE: usize = 4096;
/// At most this many rule evaluations per object: cel-interpreter has no cost model, so the
/// work per write is bounded by count (upstream bounds it by estimated cost).
pub(crate) const MAX_EVALUATIONS: usize = 10_000;

type Compiled = Result<Arc<Program>, String>;

/// The program of `rule`, compiled on first sight.
pub(crate) fn compiled(rule: &str) -> Compiled {
    static RULES: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = RULES.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = map.get(rule) {
        return found.clone();
    }
    if map.len() >= CACHE {
        map.clear();
    }
    // The parser panics on some malformed input; a panic is a compile error here.
    let program = std::panic::catch_unwind(|| Program::compile(rule))
        .map_err(|_| "the expression cannot be parsed".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map(Arc::new);
    map.insert(rule.to_string(), program.clone());
    program
}

/// One failed rule: where (`fieldPath` appended), the cause reason and the message.
pub(crate) struct Failure {
    pub field_path: Option<String>,
    pub reason: &'static str,
    pub message: String,
}

/// Evaluates every rule of `rules` (a schema's `x-kubernetes-validations`) on `value`.
pub(crate) fn check(
    rules: &[Value],
    value: &Value,
    old: Option<&Value>,
    budget: &mut usize,
    out: &mut Vec<Failure>,
) {
    let mut ctx: Option<Context> = None;
    for rule in rules {
        let Some(source) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        let Ok(program) = compiled(source) else {
            continue; // refused at CRD registration; never evaluated
        };
        let transition = program.references().has_variable("oldSelf");
        if transition && old.is_none() {
            continue;
        }
        if *budget == 0 {
            out.push(failure(
                rule,
                "FieldValueForbidden",
                "validation rules' cost budget exceeded".into(),
            ));
            return;
        }
        *budget -= 1;
        let ctx = ctx.get_or_insert_with(|| context(value, old));
        match program.execute(ctx) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let message = match message_of(rule, ctx) {
                    Some(m) => m,
                    None => format!("failed rule: {source}"),
                };
                let reason = reason(rule);
                out.push(failure(rule, reason, message));
            }
            Ok(other) => out.push(failure(
                rule,
                "FieldValueInvalid",
                format!(
                    "rule {source:?} evaluated to {:?}, not a bool",
                    other.type_of()
                ),
            )),
            Err(e) => out.push(failure(
                rule,
                "FieldValueInvalid",
                format!("rule {source:?}: {e}"),
            )),
        }
    }
}

/// The failure message: `messageExpression`'s string when it yields a non-empty one (it
/// costs an evaluation only on failure), else `message`.
fn message_of(rule: &Value, ctx: &Context) -> Option<String> {
    let expression = rule.get("messageExpression").and_then(Value::as_str);
    if let Some(Ok(program)) = expression.map(compiled)
        && let Ok(Cel::String(m)) = program.execute(ctx)
        && !m.trim().is_empty()
    {
        return Some(m.to_string());
    }
    rule.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn context(value: &Value, old: Option<&Value>) -> Context<'static> {
    let mut ctx = Context::default();
    crate::cel_libs::register(&mut ctx);
    if let Ok(v) = cel_interpreter::to_value(value) {
        ctx.add_variable_from_value("self", v);
    }
    if let Some(Ok(v)) = old.map(cel_interpreter::to_value) {
        ctx.add_variable_from_value("oldSelf", v);
    }
    ctx
}

/// The rule's `reason`, as a cause reason (upstream allows these four).
fn reason(rule: &Value) -> &'static str {
    match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueRequired") => "FieldValueRequired",
        Some("FieldValueDuplicate") => "FieldValueDuplicate",
        Some("FieldValueForbidden") => "FieldValueForbidden",
        _ => "FieldValueInvalid",
    }
}

fn failure(rule: &Value, reason: &'static str, message: String) -> Failure {
    let field_path = rule
        .get("fieldPath")
        .and_then(Value::as_str)
        .map(str::to_string);
    Failure {
        field_path,
        reason,
        message,
    }
}

/// Compiles every rule (and `pattern`) of a CRD's schemas; one `(field, message)` per one that
/// does not compile, naming it as upstream does
/// (`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`).
pub fn crd_rule_errors(crd: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    for (i, v) in versions.into_iter().flatten().enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            let mut path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            schema_rules(schema, &mut path, 0, &mut out);
        }
    }
    out
}

fn schema_rules(schema: &Value, path: &mut String, depth: usize, out: &mut Vec<(String, String)>) {
    if depth > 64 {
        return;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pattern)
    {
        let message = format!(
            "Invalid value: {pattern:?}: must be a valid regular expression, but isn't: {e}"
        );
        out.push((format!("{path}.pattern"), message));
    }
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    for (j, rule) in rules.into_iter().flatten().enumerate() {
        for key in ["rule", "messageExpression"] {
            let Some(source) = rule.get(key).and_then(Value::as_str) else {
                continue;
            };
            if let Err(e) = compiled(source) {
                let field = format!("{path}.x-kubernetes-validations[{j}].{key}");
                let message = format!("Invalid value: {source:?}: compilation failed: {e}");
                out.push((field, message));
            }
        }
    }
    let mut child = |suffix: &str, node: &Value, out: &mut Vec<(String, String)>| {
        let len = path.len();
        path.push_str(suffix);
        schema_rules(node, path, depth + 1, out);
        path.truncate(len);
    };
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, node) in props {
            child(&format!(".properties[{k}]"), node, out);
        }
    }
    if let Some(items) = schema.get("items") {
        child(".items", items, out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        child(".additionalProperties", extra, out);
    }
}
