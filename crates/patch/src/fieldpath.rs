//! Field sets as structured-merge-diff models them: a tree of path elements, each node either a
//! member of the set (owned itself) or only a prefix of deeper members. Serialized as FieldsV1.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One step of a path into an object.
#[derive(Debug, Clone)]
pub(crate) enum PathElement {
    /// A property of an object: `f:name`.
    Field(String),
    /// An element of a `map` list, by its key fields sorted by name: `k:{"name":"nginx"}`.
    Key(Vec<(String, Value)>),
    /// An element of a `set` list, by value: `v:"foo"`.
    Value(Value),
    /// An element by position: `i:0` (read from other servers' entries, never produced).
    Index(usize),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 key of this element.
    pub(crate) fn to_fields_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let map: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(map))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key (everything but `.`).
    pub(crate) fn from_fields_key(key: &str) -> Result<Self, String> {
        if let Some(name) = key.strip_prefix("f:") {
            return Ok(PathElement::Field(name.to_owned()));
        }
        if let Some(json) = key.strip_prefix("k:") {
            let parsed: Value =
                serde_json::from_str(json).map_err(|e| format!("invalid key {key:?}: {e}"))?;
            let Value::Object(map) = parsed else {
                return Err(format!("invalid key {key:?}: not an object"));
            };
            let mut fields: Vec<(String, Value)> = map.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(PathElement::Key(fields));
        }
        if let Some(json) = key.strip_prefix("v:") {
            let parsed: Value =
                serde_json::from_str(json).map_err(|e| format!("invalid value {key:?}: {e}"))?;
            return Ok(PathElement::Value(parsed));
        }
        if let Some(index) = key.strip_prefix("i:") {
            let parsed = index
                .parse::<usize>()
                .map_err(|e| format!("invalid index {key:?}: {e}"))?;
            return Ok(PathElement::Index(parsed));
        }
        Err(format!("unknown path element {key:?}"))
    }
}

impl std::fmt::Display for PathElement {
    /// structured-merge-diff's path notation: `.name`, `[k="v",k2=1]`, `[=v]`, `[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A total order on JSON values, as structured-merge-diff orders them: numbers, strings,
/// booleans, lists, maps, null.
pub(crate) fn json_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let c = json_cmp(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|a, b| a.0.cmp(b.0));
            ys.sort_by(|a, b| a.0.cmp(b.0));
            for ((lk, lv), (rk, rv)) in xs.iter().zip(&ys) {
                let c = lk.cmp(rk).then_with(|| json_cmp(lv, rv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((ak, av), (bk, bv)) in a.iter().zip(b) {
                    let c = ak.cmp(bk).then_with(|| json_cmp(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => json_cmp(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// Renders a path in structured-merge-diff notation, e.g. `.spec.containers[name="nginx"].image`.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths. The root node is never a member; empty children are never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    /// This node's path is in the set (FieldsV1 `.`, or a leaf `{}`).
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Adds `path`; the empty path (the whole object) is ignored, as in structured-merge-diff.
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        // Look up before cloning the element: most inserts share their prefix with earlier ones.
        let child = match self.children.get_mut(first) {
            Some(c) => c,
            None => self.children.entry(first.clone()).or_default(),
        };
        if rest.is_empty() {
            child.member = true;
        } else {
            child.insert(rest);
        }
    }

    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// The member paths: the members of a node first, then the members below each child, in
    /// path-element order (the order structured-merge-diff reports conflicts in).
    pub(crate) fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for (pe, child) in &self.children {
            if child.member {
                let mut p = prefix.clone();
                p.push(pe.clone());
                out.push(p);
            }
        }
        for (pe, child) in &self.children {
            if !child.children.is_empty() {
                prefix.push(pe.clone());
                child.collect_paths(prefix, out);
                prefix.pop();
            }
        }
    }

    /// Keeps only the top-level children that `keep` accepts.
    pub(crate) fn retain_top(&mut self, mut keep: impl FnMut(&PathElement) -> bool) {
        self.children.retain(|pe, _| keep(pe));
    }

    pub(crate) fn clear_member(&mut self) {
        self.member = false;
    }

    pub(crate) fn child_mut(&mut self, pe: &PathElement) -> Option<&mut FieldSet> {
        self.children.get_mut(pe)
    }

    pub(crate) fn prune_empty(&mut self) {
        for child in self.children.values_mut() {
            child.prune_empty();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// The FieldsV1 JSON of this set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (pe, child) in &self.children {
            map.insert(pe.to_fields_key(), child.node_json());
        }
        Value::Object(map)
    }

    fn node_json(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            map.insert(pe.to_fields_key(), child.node_json());
        }
        Value::Object(map)
    }

    /// Parses FieldsV1 JSON.
    pub(crate) fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let mut set = Self::parse_node(v)?;
        set.member = false;
        Ok(set)
    }

    fn parse_node(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = v else {
            return Err("fieldsV1 node is not an object".to_owned());
        };
        let mut node = FieldSet::default();
        if map.is_empty() {
            node.member = true;
        }
        for (key, child) in map {
            if key == "." {
                node.member = true;
                continue;
            }
            let pe = PathElement::from_fields_key(key)?;
            let parsed = Self::parse_node(child)?;
            let merged = match node.children.get(&pe) {
                Some(existing) => existing.union(&parsed),
                None => parsed,
            };
            node.children.insert(pe, merged);
        }
        Ok(node)
    }
}
