//! Upstream's descriptions of the built-in definitions, for the served OpenAPI documents only
//! (`kubectl explain` prints them). They are most of the upstream data's bytes and nothing but
//! the documents reads them, so they live apart from the schemas (`data/descriptions.json.gz`,
//! made by `tools/gen.py`: every text once, per release only the entries that changed) and are
//! decompressed on the first document a process serves, never for validation or patching.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::SUPPORTED_MINORS;

const DATA: &[u8] = include_bytes!("../data/descriptions.json.gz");

/// The key of a definition's own description among its properties' (no property is unnamed).
const OWN: &str = "";

/// Every release's descriptions: one table of texts, and per release the entries that changed.
#[derive(Debug, Default)]
struct Descriptions {
    texts: Vec<String>,
    /// From 1.25 on: definition → entry (`OWN` or a property) → index into `texts`.
    releases: Vec<HashMap<String, HashMap<String, usize>>>,
}

static LOADED: OnceLock<Descriptions> = OnceLock::new();

/// The descriptions, decompressed on first use. Corrupt data yields none (a document without
/// descriptions is still a correct document; a unit test keeps the embedded data readable).
fn loaded() -> &'static Descriptions {
    LOADED.get_or_init(|| parse(DATA).unwrap_or_default())
}

fn parse(gz: &[u8]) -> Option<Descriptions> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    let texts = doc
        .get("strings")?
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    let releases = doc
        .get("releases")?
        .as_array()?
        .iter()
        .map(release)
        .collect::<Option<Vec<_>>>()?;
    Some(Descriptions { texts, releases })
}

fn release(v: &Value) -> Option<HashMap<String, HashMap<String, usize>>> {
    v.as_object()?
        .iter()
        .map(|(def, entries)| {
            let entries = entries
                .as_object()?
                .iter()
                .map(|(k, i)| Some((k.clone(), usize::try_from(i.as_u64()?).ok()?)))
                .collect::<Option<HashMap<_, _>>>()?;
            Some((def.clone(), entries))
        })
        .collect()
}

impl Descriptions {
    /// The text of an entry in release 1.`minor`: the newest change at or below that release.
    fn get(&self, minor: u32, definition: &str, entry: &str) -> Option<&str> {
        let upto =
            (minor.checked_sub(*SUPPORTED_MINORS.start())? as usize + 1).min(self.releases.len());
        self.releases[..upto]
            .iter()
            .rev()
            .find_map(|r| r.get(definition)?.get(entry))
            .and_then(|&i| self.texts.get(i))
            .map(String::as_str)
    }
}

/// A release definition with upstream's descriptions on it and on its properties.
pub(crate) fn describe(minor: u32, name: &str, schema: &Value) -> Value {
    let d = loaded();
    let mut out = schema.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    if let Some(text) = d.get(minor, name, OWN) {
        obj.insert("description".into(), Value::String(text.to_string()));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        describe_properties(d, minor, name, props);
    }
    out
}

fn describe_properties(d: &Descriptions, minor: u32, name: &str, props: &mut Map<String, Value>) {
    for (prop, p) in props.iter_mut() {
        if let (Some(text), Some(p)) = (d.get(minor, name, prop), p.as_object_mut()) {
            p.insert("description".into(), Value::String(text.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_descriptions_load_and_follow_releases() {
        let d = parse(DATA).expect("descriptions.json.gz is readable");
        assert_eq!(d.releases.len(), SUPPORTED_MINORS.count());
        let replicas = d
            .get(30, "io.k8s.api.apps.v1.DeploymentSpec", "replicas")
            .expect("DeploymentSpec.replicas is described");
        assert!(
            replicas.starts_with("Number of desired pods."),
            "{replicas}"
        );
        // An entry set in 1.25 and unchanged since is found from any later release.
        for minor in SUPPORTED_MINORS {
            assert!(
                d.get(minor, "io.k8s.api.core.v1.ConfigMap", OWN).is_some(),
                "1.{minor}"
            );
        }
        // A definition that did not exist yet has no description in an older release.
        assert!(
            d.get(25, "io.k8s.api.flowcontrol.v1.FlowSchema", OWN)
                .is_none()
        );
        assert!(
            d.get(29, "io.k8s.api.flowcontrol.v1.FlowSchema", OWN)
                .is_some()
        );
    }

    #[test]
    fn describe_sets_the_definitions_and_its_properties_texts() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "replicas": {"type": "integer"}, "notUpstream": {"type": "string"}}});
        let out = describe(33, "io.k8s.api.apps.v1.DeploymentSpec", &schema);
        assert!(
            out["description"]
                .as_str()
                .is_some_and(|s| s.contains("DeploymentSpec"))
        );
        assert!(out["properties"]["replicas"]["description"].is_string());
        assert!(
            out["properties"]["notUpstream"]
                .get("description")
                .is_none()
        );
    }
}
