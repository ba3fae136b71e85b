//! Label and field selectors in their query-string form (`app=web,tier!=db,env in (a,b),!gone`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(key: &str, rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'));
    let inner = inner
        .ok_or_else(|| format!("unable to parse requirement: expected '(' ... ')' after {key}"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
        return Err(format!("invalid label value: \"{bad}\""));
    }
    Ok(values)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::NotExists,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some(idx) = part.find(" notin ") {
                let key = part[..idx].trim();
                Requirement {
                    key: key.into(),
                    op: Op::NotIn(parse_set(key, &part[idx + 7..])?),
                }
            } else if let Some(idx) = part.find(" in ") {
                let key = part[..idx].trim();
                Requirement {
                    key: key.into(),
                    op: Op::In(parse_set(key, &part[idx + 4..])?),
                }
            } else {
                Requirement {
                    key: part.to_string(),
                    op: Op::Exists,
                }
            };
            if !valid_key(&req.key) {
                return Err(format!("invalid label key \"{}\"", req.key));
            }
            if let Op::Eq(v) | Op::NotEq(v) = &req.op
                && !valid_value(v)
            {
                return Err(format!("invalid label value: \"{v}\""));
            }
            reqs.push(req);
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Does an object's `metadata.labels` satisfy every requirement?
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match &r.op {
            Op::Eq(v) => get(&r.key) == Some(v.as_str()),
            Op::NotEq(v) => get(&r.key) != Some(v.as_str()),
            Op::In(vs) => get(&r.key).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => get(&r.key).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Op::Exists => get(&r.key).is_some(),
            Op::NotExists => get(&r.key).is_none(),
        })
    }
}

/// A field selector: equality and inequality on dotted paths (`metadata.name`, `status.phase`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid field selector: '{part}': expected an operator (=, ==, !=)"
                ));
            };
            let path: Vec<String> = path.trim().split('.').map(String::from).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!(
                    "invalid field selector: '{part}': empty path segment"
                ));
            }
            reqs.push((path, eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The first field this selector names that `supported` does not list (kube-apiserver
    /// refuses a selector on a field the kind has no label conversion for).
    pub fn unsupported(&self, supported: impl Fn(&str) -> bool) -> Option<String> {
        self.reqs
            .iter()
            .map(|(path, _, _)| path.join("."))
            .find(|label| !supported(label))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path {
                cur = cur.and_then(|c| c.get(seg));
            }
            let have = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

/// The field labels kube-apiserver accepts in a field selector on a built-in kind: the object
/// meta's two everywhere, plus the kind's own (its registered field label conversion).
pub fn builtin_field_labels(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "namespaces") => &["status.phase"],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "replicationcontrollers") => &["spec.replicas", "status.replicas"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse(
            "app=web, tier!=db,env in (prod, staging),zone notin (a),canary,!legacy",
        )
        .expect("parses");
        let l = json!({"app": "web", "tier": "fe", "env": "prod", "zone": "b", "canary": "true"});
        assert!(s.matches(Some(&l)));
        let l2 = json!({"app": "web", "tier": "fe", "env": "prod", "zone": "b", "canary": "true", "legacy": "x"});
        assert!(!s.matches(Some(&l2)));
        assert!(!s.matches(None));
        assert!(LabelSelector::parse("").expect("empty").matches(None));
    }

    #[test]
    fn rejects_malformed() {
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("a=(b)").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn field_selector_on_paths() {
        let f = FieldSelector::parse("metadata.name=x,status.phase!=Running").expect("parses");
        assert!(f.matches(&json!({"metadata": {"name": "x"}, "status": {"phase": "Pending"}})));
        assert!(!f.matches(&json!({"metadata": {"name": "x"}, "status": {"phase": "Running"}})));
        assert!(!f.matches(&json!({"metadata": {"name": "y"}})));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// `k=v` matches exactly the label maps holding v at k; `k!=v` is its complement.
        #[test]
        fn equality_and_inequality_are_complements(
            labels in proptest::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..4),
            key in "[a-c]{1,2}", value in "[x-z]{0,2}")
        {
            let l = serde_json::to_value(&labels).expect("labels");
            let eq = LabelSelector::parse(&format!("{key}={value}")).expect("eq");
            let ne = LabelSelector::parse(&format!("{key}!={value}")).expect("ne");
            prop_assert_eq!(eq.matches(Some(&l)), labels.get(&key) == Some(&value));
            prop_assert_ne!(eq.matches(Some(&l)), ne.matches(Some(&l)));
            let exists = LabelSelector::parse(&key).expect("exists");
            let not_exists = LabelSelector::parse(&format!("!{key}")).expect("not exists");
            prop_assert_ne!(exists.matches(Some(&l)), not_exists.matches(Some(&l)));
        }

        /// `k in (a,b)` is the disjunction of `k=a` and `k=b`; notin is its complement.
        #[test]
        fn set_membership(labels in proptest::collection::btree_map("[a-b]", "[x-z]", 0..3), a in "[x-z]", b in "[x-z]") {
            let l = serde_json::to_value(&labels).expect("labels");
            let inn = LabelSelector::parse(&format!("a in ({a},{b})")).expect("in");
            let notin = LabelSelector::parse(&format!("a notin ({a},{b})")).expect("notin");
            let either = LabelSelector::parse(&format!("a={a}")).expect("eq").matches(Some(&l))
                || LabelSelector::parse(&format!("a={b}")).expect("eq").matches(Some(&l));
            prop_assert_eq!(inn.matches(Some(&l)), either);
            prop_assert_ne!(inn.matches(Some(&l)), notin.matches(Some(&l)));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = LabelSelector::parse(&s);
            let _ = FieldSelector::parse(&s);
        }
    }
}
