//! Metric gates: a PromQL query with the swap's names filled in, judged against a threshold by
//! instant queries to Prometheus during each traffic step (the controller evaluates them; this
//! module holds the spec, its validation, the query template and the status).
//!
//! Simpler to write than Argo Rollouts' `AnalysisTemplate`: the gate sits inline in the
//! strategy, the variables are filled in by rotor (no `args` to pass), a threshold is a bound
//! (`max` / `min`) rather than an expression, and one `consecutive` count replaces
//! `count` / `failureLimit` / `inconclusiveLimit`. A query that answers nothing is inconclusive,
//! never a pass; `onInconclusive` says whether that holds the step or fails the gate.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{Errors, FieldErrorKind};

/// Upper bound on the number of metric gates of one strategy (also in the schema).
pub const MAX_METRIC_GATES: usize = 10;
/// Upper bound on a gate's evaluation interval, an hour (also in the schema).
pub const MAX_METRIC_INTERVAL_SECONDS: u32 = 3600;
/// Upper bound on a gate's consecutive passes (also in the schema).
pub const MAX_METRIC_CONSECUTIVE: u32 = 100;
/// Upper bound on a query template's length (also in the schema).
pub const MAX_QUERY_LENGTH: usize = 4096;

/// The variables a swap's query template may use, besides `{{labels.KEY}}`.
pub const QUERY_VARIABLES: [&str; 6] = ["cluster", "swap", "blue", "green", "weight", "endpoint"];
/// The variables a Rollout's wave gate may use (`spec.waveGates`).
pub const WAVE_QUERY_VARIABLES: [&str; 4] = ["rollout", "wave", "clusters", "instances"];

/// The schema's rule for a query: every `{{` opens a known variable and is closed. The same
/// language as [`parse_query`], written without backslashes (CEL string escapes): `[{]` is `\{`.
/// It admits the variables of both scopes (the type is shared); [`validate_gates`] refuses a
/// variable of the other scope, naming the field.
const QUERY_PATTERN: &str = concat!(
    "^(?:[^{]|[{][^{]|[{]$|[{][{] *(?:cluster|swap|blue|green|weight|endpoint|",
    "rollout|wave|clusters|instances|labels[.][A-Za-z0-9_./-]+) *[}][}])*$"
);

/// The schema's rule for a Prometheus URL: http or https, a host, an optional path; no
/// credentials (they would show in status and Events), no query, no fragment.
const URL_PATTERN: &str = r"^https?://[^/@?#\s]+(/[^?#\s]*)?$";

fn default_interval_seconds() -> u32 {
    30
}
fn default_consecutive() -> u32 {
    3
}

/// A gate on a Prometheus metric, evaluated throughout every traffic step: a step ends only
/// once every gate has passed `consecutive` evaluations in a row within it, and a value beyond
/// the threshold rolls the swap back.
///
/// ```yaml
/// - name: error-ratio
///   query: |
///     sum(rate(http_requests_total{cluster="{{green}}", code=~"5.."}[1m]))
///     / sum(rate(http_requests_total{cluster="{{green}}"}[1m]))
///   threshold: {max: 0.01}
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricGate {
    /// The gate's name, a DNS label unique among the strategy's gates: Events, status and
    /// rollbacks name the gate by it.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// A PromQL instant query. `{{cluster}}` (the Cluster's name), `{{swap}}` (the
    /// ClusterSwap's), `{{blue}}` and `{{green}}` (the instances' names), `{{weight}}` (green's
    /// share now, in percent), `{{endpoint}}` (the Cluster's traffic endpoint) and
    /// `{{labels.KEY}}` (the Cluster's label KEY) are filled in before each evaluation. Every
    /// series it returns must be within the threshold; no series, or NaN, is inconclusive.
    #[schemars(length(min = 1, max = 4096))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": format!("self.matches('{QUERY_PATTERN}')"),
        "message": "every {{ must open a known variable and be closed: {{cluster}}, {{swap}}, {{blue}}, {{green}}, {{weight}}, {{endpoint}} or {{labels.KEY}} in a swap's gate; {{rollout}}, {{wave}}, {{clusters}} or {{instances}} in a wave gate"
    }]))]
    pub query: String,
    /// The bound the query's value must keep.
    pub threshold: Threshold,
    /// Seconds between two evaluations of the gate.
    #[serde(default = "default_interval_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: u32,
    /// Evaluations in a row that must pass within a traffic step before the step may end. An
    /// inconclusive evaluation starts the count over.
    #[serde(default = "default_consecutive")]
    #[schemars(range(min = 1, max = 100))]
    pub consecutive: u32,
    /// What an inconclusive evaluation (no data, NaN, a query that fails or times out) does:
    /// `Pause` holds the step (no advance, no rollback) until the gate can be judged; `Fail`
    /// counts it as a failure and rolls back.
    #[serde(default)]
    pub on_inconclusive: OnInconclusive,
    /// The Prometheus to ask; absent: the one `rotor serve --prometheus-url` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

/// The bound a metric gate's value must keep: at most `max`, at least `min`, or both.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.max) || has(self.min)", "message": "set max, min or both"},
    {"rule": "!has(self.max) || !has(self.min) || self.min <= self.max", "message": "min must not exceed max"}
]))]
pub struct Threshold {
    /// The value must be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The value must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

impl Threshold {
    /// Whether `value` keeps the bound. NaN never does (the caller calls it inconclusive).
    pub fn holds(&self, value: f64) -> bool {
        !value.is_nan()
            && self.max.is_none_or(|max| value <= max)
            && self.min.is_none_or(|min| value >= min)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(min), Some(max)) => write!(f, "between {min} and {max}"),
            (None, Some(max)) => write!(f, "at most {max}"),
            (Some(min), None) => write!(f, "at least {min}"),
            (None, None) => f.write_str("unbounded"),
        }
    }
}

closed_enum! {
    /// What an inconclusive metric gate evaluation does.
    #[derive(Default)]
    pub enum OnInconclusive {
        /// Hold the traffic step: no advance, no rollback, until the gate can be judged.
        #[default]
        Pause = "Pause",
        /// Count it as a failure: roll back.
        Fail = "Fail",
    }
}

impl OnInconclusive {
    /// Whether this is the default, `Pause` (left out of the wire form).
    pub fn is_pause(&self) -> bool {
        *self == OnInconclusive::Pause
    }
}

/// Where a metric gate's Prometheus answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of Prometheus' HTTP API (`http://prometheus.monitoring:9090`, or with a path
    /// prefix); `/api/v1/query` is appended. No credentials, query or fragment.
    #[schemars(length(min = 1, max = 2048), pattern(URL_PATTERN))]
    pub url: String,
}

impl MetricGate {
    /// The gate's interval as a `Duration`.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.interval_seconds.into())
    }

    fn validate_at(&self, path: &str, errs: &mut Errors) {
        errs.dns_label(&format!("{path}.name"), &self.name);
        let query = format!("{path}.query");
        if errs.non_empty(&query, &self.query) {
            if self.query.len() > MAX_QUERY_LENGTH {
                errs.invalid(&query, format!("must be at most {MAX_QUERY_LENGTH} bytes"));
            } else if let Err(e) = parse_query(&self.query) {
                errs.invalid(&query, e.to_string());
            }
        }
        self.validate_threshold(&format!("{path}.threshold"), errs);
        if !(1..=MAX_METRIC_INTERVAL_SECONDS).contains(&self.interval_seconds) {
            errs.invalid(
                format!("{path}.intervalSeconds"),
                format!(
                    "{}: must be between 1 and {MAX_METRIC_INTERVAL_SECONDS}",
                    self.interval_seconds
                ),
            );
        }
        if !(1..=MAX_METRIC_CONSECUTIVE).contains(&self.consecutive) {
            errs.invalid(
                format!("{path}.consecutive"),
                format!(
                    "{}: must be between 1 and {MAX_METRIC_CONSECUTIVE}",
                    self.consecutive
                ),
            );
        }
        if let Some(p) = &self.prometheus {
            validate_url(&format!("{path}.prometheus.url"), &p.url, errs);
        }
    }

    fn validate_threshold(&self, path: &str, errs: &mut Errors) {
        let Threshold { max, min } = self.threshold;
        if max.is_none() && min.is_none() {
            errs.required(path, "set max, min or both");
        }
        for (field, bound) in [("max", max), ("min", min)] {
            if let Some(v) = bound.filter(|v| !v.is_finite()) {
                errs.invalid(
                    format!("{path}.{field}"),
                    format!("{v}: must be a finite number"),
                );
            }
        }
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            errs.invalid(
                format!("{path}.min"),
                format!("{min} is greater than max {max}"),
            );
        }
    }
}

fn validate_url(field: &str, url: &str, errs: &mut Errors) {
    if !errs.non_empty(field, url) {
        return;
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        errs.invalid(
            field,
            format!("{url:?}: must start with http:// or https://"),
        );
        return;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        // Not quoted: the message becomes a condition and an Event.
        errs.invalid(
            field,
            "must not hold credentials (user:password@): they would show in status and Events",
        );
        return;
    }
    let problem = if authority.is_empty() {
        Some("has no host")
    } else if url.contains(['?', '#']) {
        Some("must have no query or fragment")
    } else if url.contains(char::is_whitespace) || url.len() > 2048 {
        Some("must be at most 2048 characters without spaces")
    } else {
        None
    };
    if let Some(problem) = problem {
        errs.invalid(field, format!("{url:?}: {problem}"));
    }
}

/// What is wrong with `url` as a Prometheus URL (the rules of a gate's `prometheus.url`, for
/// `rotor serve --prometheus-url`), if anything. The message never quotes credentials.
pub fn prometheus_url_problem(url: &str) -> Option<String> {
    let mut errs = Errors::default();
    validate_url("url", url, &mut errs);
    errs.0.into_iter().next().map(|e| e.message)
}

/// Where a gate is evaluated, which decides the variables its query may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateScope {
    /// During a swap's traffic steps (`healthGates.metricGates`).
    Swap,
    /// Between a Rollout's waves (`spec.waveGates`).
    Wave,
}

impl GateScope {
    fn allows(self, var: Variable<'_>) -> bool {
        let wave = matches!(
            var,
            Variable::Rollout | Variable::Wave | Variable::Clusters | Variable::Instances
        );
        wave == (self == GateScope::Wave)
    }

    fn variables(self) -> String {
        match self {
            GateScope::Swap => variable_list(),
            GateScope::Wave => WAVE_QUERY_VARIABLES
                .iter()
                .map(|v| format!("{{{{{v}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl fmt::Display for GateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GateScope::Swap => "a swap's gate",
            GateScope::Wave => "a wave gate",
        })
    }
}

/// The first variable of `template` that `scope` does not fill in.
fn out_of_scope(template: &str, scope: GateScope) -> Option<TemplateError> {
    let pieces = parse_query(template).ok()?;
    pieces.into_iter().find_map(|p| match p {
        Piece::Var(v) if !scope.allows(v) => Some(TemplateError::OutOfScope {
            name: v.to_string(),
            scope,
        }),
        _ => None,
    })
}

/// Validates a strategy's metric gates at `path` (`….healthGates.metricGates`, or
/// `spec.waveGates` for `scope` [`GateScope::Wave`]).
pub(crate) fn validate_gates(
    path: &str,
    gates: &[MetricGate],
    scope: GateScope,
    errs: &mut Errors,
) {
    if gates.len() > MAX_METRIC_GATES {
        errs.push(
            path,
            FieldErrorKind::TooMany,
            format!("{} gates, at most {MAX_METRIC_GATES}", gates.len()),
        );
        return;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, gate) in gates.iter().enumerate() {
        let p = format!("{path}[{i}]");
        gate.validate_at(&p, errs);
        if let Some(e) = out_of_scope(&gate.query, scope) {
            errs.invalid(format!("{p}.query"), e.to_string());
        }
        if !gate.name.is_empty() && !seen.insert(gate.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                FieldErrorKind::Duplicate,
                format!("gate {:?} is defined twice", gate.name),
            );
        }
    }
}

/// One `{{…}}` of a query template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable<'a> {
    /// `{{cluster}}`: the Cluster's name.
    Cluster,
    /// `{{swap}}`: the ClusterSwap's name.
    Swap,
    /// `{{blue}}`: the instance serving when the swap began.
    Blue,
    /// `{{green}}`: the instance the swap builds.
    Green,
    /// `{{weight}}`: green's share of the traffic now, in percent.
    Weight,
    /// `{{endpoint}}`: the Cluster's traffic endpoint.
    Endpoint,
    /// `{{labels.KEY}}`: the Cluster's label KEY.
    Label(&'a str),
    /// `{{rollout}}`: the Rollout's name (wave gates).
    Rollout,
    /// `{{wave}}`: the name of the wave that just finished (wave gates).
    Wave,
    /// `{{clusters}}`: the finished wave's Clusters as a regex alternation `a|b|c`, for `=~`
    /// (wave gates).
    Clusters,
    /// `{{instances}}`: the instances serving those Clusters now, as an alternation (wave
    /// gates): what series labelled by instance name carry after the swaps.
    Instances,
}

impl fmt::Display for Variable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Variable::Cluster => "cluster",
            Variable::Swap => "swap",
            Variable::Blue => "blue",
            Variable::Green => "green",
            Variable::Weight => "weight",
            Variable::Endpoint => "endpoint",
            Variable::Label(key) => return write!(f, "{{{{labels.{key}}}}}"),
            Variable::Rollout => "rollout",
            Variable::Wave => "wave",
            Variable::Clusters => "clusters",
            Variable::Instances => "instances",
        };
        write!(f, "{{{{{name}}}}}")
    }
}

/// A query template piece: text as written, or a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Var(Variable<'a>),
}

/// Why a query template cannot be filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` at this byte offset has no `}}`.
    Unclosed { at: usize },
    /// `{{name}}` is no variable.
    Unknown { name: String },
    /// The Cluster has no label `key` (`{{labels.key}}`).
    MissingLabel { key: String },
    /// `name` (as written, `{{wave}}`) is a variable of the other scope.
    OutOfScope { name: String, scope: GateScope },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed { at } => write!(f, "the {{{{ at byte {at} is not closed"),
            TemplateError::Unknown { name } => write!(
                f,
                "unknown template variable {{{{{name}}}}}; the variables are {} (a swap's gate) \
                 and {} (a wave gate)",
                variable_list(),
                GateScope::Wave.variables()
            ),
            TemplateError::MissingLabel { key } => {
                write!(f, "the Cluster has no label {key:?} ({{{{labels.{key}}}}})")
            }
            TemplateError::OutOfScope { name, scope } => write!(
                f,
                "{name} is not filled in for {scope}; its variables are {}",
                scope.variables()
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

fn variable_list() -> String {
    let mut names: Vec<String> = QUERY_VARIABLES
        .iter()
        .map(|v| format!("{{{{{v}}}}}"))
        .collect();
    names.push("{{labels.KEY}}".into());
    names.join(", ")
}

fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
}

fn variable(name: &str) -> Option<Variable<'_>> {
    Some(match name {
        "cluster" => Variable::Cluster,
        "swap" => Variable::Swap,
        "blue" => Variable::Blue,
        "green" => Variable::Green,
        "weight" => Variable::Weight,
        "endpoint" => Variable::Endpoint,
        "rollout" => Variable::Rollout,
        "wave" => Variable::Wave,
        "clusters" => Variable::Clusters,
        "instances" => Variable::Instances,
        _ => match name.strip_prefix("labels.") {
            Some(key) if is_label_key(key) => Variable::Label(key),
            _ => return None,
        },
    })
}

/// A query template's pieces; the first problem if it has one. Spaces inside the braces are
/// allowed (`{{ green }}`).
pub fn parse_query(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let at = template.len() - rest.len() + open;
        let inner = &rest[open + 2..];
        let close = inner.find("}}").ok_or(TemplateError::Unclosed { at })?;
        let name = inner[..close].trim_matches(' ');
        let var = variable(name).ok_or_else(|| TemplateError::Unknown {
            name: name.to_string(),
        })?;
        pieces.push(Piece::Var(var));
        rest = &inner[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// What a query template's variables stand for in one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct QueryValues<'a> {
    pub cluster: &'a str,
    pub swap: &'a str,
    pub blue: &'a str,
    pub green: &'a str,
    /// Green's share now, in percent.
    pub weight: u8,
    pub endpoint: &'a str,
    /// The Cluster's labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// The query with its variables filled in. The values are names and label values, whose
/// syntax (DNS names, Kubernetes label values) holds no quote or backslash, so they are safe
/// inside a PromQL string as they are.
pub fn render_query(template: &str, values: &QueryValues<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    for piece in parse_query(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(Variable::Cluster) => out.push_str(values.cluster),
            Piece::Var(Variable::Swap) => out.push_str(values.swap),
            Piece::Var(Variable::Blue) => out.push_str(values.blue),
            Piece::Var(Variable::Green) => out.push_str(values.green),
            Piece::Var(Variable::Weight) => out.push_str(&values.weight.to_string()),
            Piece::Var(Variable::Endpoint) => out.push_str(values.endpoint),
            Piece::Var(Variable::Label(key)) => {
                let value = values
                    .labels
                    .get(key)
                    .ok_or_else(|| TemplateError::MissingLabel {
                        key: key.to_string(),
                    })?;
                out.push_str(value);
            }
            Piece::Var(v) => return Err(out_of_scope_error(v, GateScope::Swap)),
        }
    }
    Ok(out)
}

fn out_of_scope_error(v: Variable<'_>, scope: GateScope) -> TemplateError {
    TemplateError::OutOfScope {
        name: v.to_string(),
        scope,
    }
}

/// What a wave gate's variables stand for once a wave's swaps ended.
#[derive(Clone, Copy, Debug)]
pub struct WaveQueryValues<'a> {
    pub rollout: &'a str,
    /// The finished wave's name.
    pub wave: &'a str,
    /// Its Clusters' names.
    pub clusters: &'a [String],
    /// The instances serving them now.
    pub instances: &'a [String],
}

/// A wave gate's query with its variables filled in. `{{clusters}}` and `{{instances}}` become
/// `a|b|c` with each name's dots escaped for PromQL's regex (`a\\.b`), so `=~"{{clusters}}"`
/// matches exactly those names.
pub fn render_wave_query(
    template: &str,
    values: &WaveQueryValues<'_>,
) -> Result<String, TemplateError> {
    let alternation = |names: &[String]| {
        names
            .iter()
            .map(|n| n.replace('.', "\\\\."))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut out = String::with_capacity(template.len() + 64);
    for piece in parse_query(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(Variable::Rollout) => out.push_str(values.rollout),
            Piece::Var(Variable::Wave) => out.push_str(values.wave),
            Piece::Var(Variable::Clusters) => out.push_str(&alternation(values.clusters)),
            Piece::Var(Variable::Instances) => out.push_str(&alternation(values.instances)),
            Piece::Var(v) => return Err(out_of_scope_error(v, GateScope::Wave)),
        }
    }
    Ok(out)
}

closed_enum! {
    /// What one evaluation of a metric gate found.
    pub enum MetricGateResult {
        /// Every series within the threshold.
        Pass = "Pass",
        /// A series beyond the threshold.
        Fail = "Fail",
        /// No data, NaN, or the query failed: the gate could not be judged.
        Inconclusive = "Inconclusive",
    }
}

/// What a swap has seen of one metric gate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricGateStatus {
    /// The gate's name.
    pub name: String,
    /// The traffic step (index into `trafficSteps`) `consecutivePasses` counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Evaluations in a row that passed in that step.
    #[serde(default)]
    pub consecutive_passes: u32,
    /// Evaluations of the gate during this swap.
    #[serde(default)]
    pub evaluations: u64,
    /// The last evaluation's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<MetricGateResult>,
    /// The last value read, as Prometheus wrote it (`0.0021`, `NaN`, `+Inf`); of several
    /// series, the one that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<String>,
    /// When the gate was last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluated_at: Option<Time>,
    /// What the last evaluation found, for people (why it was inconclusive, which series).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl MetricGateStatus {
    /// A gate not evaluated yet.
    pub fn new(name: &str) -> Self {
        MetricGateStatus {
            name: name.to_string(),
            step: None,
            consecutive_passes: 0,
            evaluations: 0,
            last_result: None,
            last_value: None,
            last_evaluated_at: None,
            message: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("rotor.dev/region".to_string(), "eu-west-1".to_string())])
    }

    fn values(labels: &BTreeMap<String, String>) -> QueryValues<'_> {
        QueryValues {
            cluster: "prod-a",
            swap: "upgrade",
            blue: "prod-a",
            green: "prod-a-g1",
            weight: 50,
            endpoint: "shop",
            labels,
        }
    }

    #[test]
    fn every_variable_is_filled_in() {
        let labels = labels();
        let q = r#"sum(up{cluster="{{cluster}}",i=~"{{blue}}|{{ green }}",s="{{swap}}",e="{{endpoint}}",r="{{labels.rotor.dev/region}}"}) * {{weight}}"#;
        assert_eq!(
            render_query(q, &values(&labels)).as_deref(),
            Ok(
                r#"sum(up{cluster="prod-a",i=~"prod-a|prod-a-g1",s="upgrade",e="shop",r="eu-west-1"}) * 50"#
            )
        );
        // PromQL's own braces are text; so is a lone `}}`.
        assert_eq!(
            render_query("rate(x{a=\"b\"}[1m]) }}", &values(&labels)).as_deref(),
            Ok("rate(x{a=\"b\"}[1m]) }}")
        );
    }

    #[test]
    fn a_wave_gates_variables_are_filled_in_and_a_swaps_refused() {
        let clusters = ["eu-1".to_string(), "us.2".to_string()];
        let instances = ["eu-1-g1".to_string()];
        let v = WaveQueryValues {
            rollout: "fleet",
            wave: "canary",
            clusters: &clusters,
            instances: &instances,
        };
        let q = r#"x{r="{{rollout}}",w="{{wave}}",c=~"{{clusters}}",i=~"{{ instances }}"}"#;
        assert_eq!(
            render_wave_query(q, &v).as_deref(),
            Ok(r#"x{r="fleet",w="canary",c=~"eu-1|us\\.2",i=~"eu-1-g1"}"#)
        );
        let e = render_wave_query("x{{green}}", &v).unwrap_err();
        assert!(
            e.to_string()
                .contains("{{green}} is not filled in for a wave gate"),
            "{e}"
        );
        let labels = labels();
        let e = render_query("x{{wave}}", &values(&labels)).unwrap_err();
        assert!(
            e.to_string()
                .contains("{{wave}} is not filled in for a swap's gate"),
            "{e}"
        );
        let mut errs = Errors::default();
        let gate = |q: &str| MetricGate {
            name: "g".into(),
            query: q.into(),
            threshold: Threshold {
                max: Some(1.0),
                min: None,
            },
            interval_seconds: 1,
            consecutive: 1,
            on_inconclusive: OnInconclusive::Pause,
            prometheus: None,
        };
        validate_gates(
            "spec.waveGates",
            &[gate("x{{cluster}}")],
            GateScope::Wave,
            &mut errs,
        );
        validate_gates("m", &[gate("x{{clusters}}")], GateScope::Swap, &mut errs);
        let fields: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(fields.len(), 2, "{fields:?}");
        assert!(fields[0].contains("spec.waveGates[0].query"), "{fields:?}");
        assert!(
            fields[0].contains("{{rollout}}, {{wave}}, {{clusters}}, {{instances}}"),
            "{fields:?}"
        );
        assert!(fields[1].contains("m[0].query"), "{fields:?}");
    }

    #[test]
    fn template_errors_say_what_is_wrong() {
        let labels = labels();
        let e = render_query("up{a=\"{{colour}}\"}", &values(&labels)).unwrap_err();
        assert_eq!(
            e,
            TemplateError::Unknown {
                name: "colour".into()
            }
        );
        assert!(e.to_string().contains("{{colour}}"), "{e}");
        assert!(e.to_string().contains("{{labels.KEY}}"), "{e}");
        assert_eq!(
            parse_query("up{{cluster}").unwrap_err(),
            TemplateError::Unclosed { at: 2 }
        );
        assert_eq!(
            parse_query("{{labels.}}").unwrap_err(),
            TemplateError::Unknown {
                name: "labels.".into()
            }
        );
        // A label the Cluster lacks is known only when rendering.
        assert_eq!(
            render_query("{{labels.team}}", &values(&labels)).unwrap_err(),
            TemplateError::MissingLabel { key: "team".into() }
        );
    }

    /// The schema's pattern (through the regex engine of the apiserver's CEL `matches`) and
    /// the parser agree on what a template may be.
    #[test]
    fn the_schema_pattern_accepts_what_the_parser_accepts() {
        let pattern = regex::Regex::new(QUERY_PATTERN).expect("the pattern compiles");
        for (q, ok) in [
            ("up", true),
            ("up{job=\"a\"}", true),
            ("{{cluster}}", true),
            ("x{{ green }}y{{labels.rotor.dev/env}}", true),
            ("{", true),
            ("a{b}{", true),
            ("{x{{cluster}}", true),
            (
                "sum(rate(x[1m]))\n/ sum(rate(y{i=\"{{green}}\"}[1m]))",
                true,
            ),
            ("{{colour}}", false),
            ("{{cluster}", false),
            ("{{{cluster}}}", false),
            ("{{labels.}}", false),
            ("{{labels.a}b}}", false),
            ("a{{", false),
        ] {
            assert_eq!(parse_query(q).is_ok(), ok, "parser on {q:?}");
            assert_eq!(pattern.is_match(q), ok, "pattern on {q:?}");
        }
    }

    #[test]
    fn a_default_prometheus_url_follows_a_gates_rules() {
        assert_eq!(prometheus_url_problem("http://prometheus:9090/prom"), None);
        assert_eq!(prometheus_url_problem("https://p.example"), None);
        let creds = prometheus_url_problem("http://user:s3cret@p:9090").expect("refused");
        assert!(
            creds.contains("credentials") && !creds.contains("s3cret"),
            "{creds}"
        );
        assert!(prometheus_url_problem("p:9090").is_some());
        assert!(prometheus_url_problem("http://p:9090/?x=1").is_some());
        assert!(prometheus_url_problem("http:///api").is_some());
    }

    #[test]
    fn thresholds_bound_from_either_side_and_nan_never_holds() {
        let max = Threshold {
            max: Some(0.01),
            min: None,
        };
        assert!(max.holds(0.01) && max.holds(-1.0) && !max.holds(0.011));
        assert!(!max.holds(f64::INFINITY) && !max.holds(f64::NAN));
        let band = Threshold {
            max: Some(10.0),
            min: Some(1.0),
        };
        assert!(band.holds(1.0) && band.holds(10.0) && !band.holds(0.5) && !band.holds(11.0));
        assert_eq!(band.to_string(), "between 1 and 10");
        assert_eq!(max.to_string(), "at most 0.01");
    }
}
