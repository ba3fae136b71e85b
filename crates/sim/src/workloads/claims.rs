//! The StatefulSet controller's PersistentVolumeClaims: one per `volumeClaimTemplates` entry and
//! ordinal, named `TEMPLATE-STATEFULSET-ORDINAL`, labelled with the template's labels and the
//! StatefulSet's selector, made before the Pod that mounts it and kept when the Pod or the
//! StatefulSet goes (upstream's default `Retain` policy; the `Delete` retention policies are not
//! simulated). No volume provisioner runs in the simulator, so a new claim is reported Bound at
//! once with the capacity it requested (no PersistentVolume object is made).

use rotor_apiserver::{ApiError, object};
use serde_json::{Value, json};

use super::{Ctx, merge};

fn templates(sts: &Value) -> &[Value] {
    sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn claim_name(template: &Value, sts: &Value, i: usize) -> String {
    format!("{}-{}-{i}", object::name(template), object::name(sts))
}

/// Mounts ordinal `i`'s claims in `pod`, in place of template volumes of the same name.
pub fn mount(sts: &Value, pod: &mut Value, i: usize) {
    for template in templates(sts) {
        let volume = json!({"name": object::name(template),
            "persistentVolumeClaim": {"claimName": claim_name(template, sts, i)}});
        let volumes = &mut pod["spec"]["volumes"];
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        if let Some(list) = volumes.as_array_mut() {
            list.retain(|v| v["name"] != volume["name"]);
            list.push(volume);
        }
    }
}

/// The claim of `template` for ordinal `i`, as the controller creates it.
fn new_claim(sts: &Value, template: &Value, i: usize) -> Value {
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let selector = sts["spec"]["selector"]["matchLabels"].as_object();
    for (k, v) in selector.into_iter().flatten() {
        labels[k] = v.clone();
    }
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name(template, sts, i), "namespace": sts["metadata"]["namespace"],
            "labels": labels},
        "spec": template["spec"],
    })
}

/// Creates ordinal `i`'s claims that are not there yet, and reports each new one Bound.
pub async fn ensure(ctx: &Ctx, sts: &Value, i: usize) -> Result<(), ApiError> {
    let res = ctx.server.resource("", "v1", "persistentvolumeclaims")?;
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("default");
    for template in templates(sts) {
        let claim = new_claim(sts, template, i);
        let name = object::name(&claim).to_string();
        match ctx
            .server
            .create(&res, Some(ns), claim, &super::opts())
            .await
        {
            Ok(_) => {}
            // Kept from an earlier Pod of this ordinal: it is mounted again, as upstream does.
            Err(e) if e.reason == "AlreadyExists" => continue,
            Err(e) => return Err(e),
        }
        let status = json!({"status": {"phase": "Bound",
            "accessModes": template["spec"]["accessModes"],
            "capacity": {"storage": template["spec"]["resources"]["requests"]["storage"]}}});
        merge(&ctx.server, &res, ns, &name, &status, true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> Value {
        json!({"metadata": {"name": "db", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "db"}},
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "disk"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    }

    #[test]
    fn each_ordinal_gets_its_own_labelled_claim() {
        let s = sts();
        let c = new_claim(&s, &templates(&s)[0], 1);
        assert_eq!(c["metadata"]["name"], "data-db-1");
        assert_eq!(
            c["metadata"]["labels"],
            json!({"tier": "disk", "app": "db"})
        );
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert!(c["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn the_pod_mounts_its_claim_in_place_of_a_same_named_volume() {
        let mut pod = json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}});
        mount(&sts(), &mut pod, 0);
        let volumes = pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(volumes.len(), 2);
        let data = volumes
            .iter()
            .find(|v| v["name"] == "data")
            .expect("data volume");
        assert_eq!(data["persistentVolumeClaim"]["claimName"], "data-db-0");
    }
}
