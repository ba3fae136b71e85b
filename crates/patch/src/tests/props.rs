use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::schema;
use crate::{ApplyOptions, NoSchema, merge_patch, server_side_apply, strategic_merge_patch};

/// JSON without nulls; keys from a small alphabet so that documents overlap.
fn json_value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|n| json!(n)),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", json_value(3), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Anything, including nulls, directive keys and Kubernetes field names.
fn wild_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        prop_oneof![
            Just("replace".to_owned()),
            Just("delete".to_owned()),
            Just("merge".to_owned()),
            Just("nginx".to_owned()),
            Just("name".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("$patch".to_owned()),
        Just("$retainKeys".to_owned()),
        Just("$setElementOrder/containers".to_owned()),
        Just("$deleteFromPrimitiveList/finalizers".to_owned()),
        Just("containers".to_owned()),
        Just("finalizers".to_owned()),
        Just("name".to_owned()),
        Just("spec".to_owned()),
        Just("ports".to_owned()),
        Just("protocol".to_owned()),
        Just("containerPort".to_owned()),
        "[a-b]",
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// The RFC 7386 patch that turns `a` into `b` (for documents without nulls).
fn diff(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = Map::new();
            for (k, av) in a {
                match b.get(k) {
                    None => {
                        out.insert(k.clone(), Value::Null);
                    }
                    Some(bv) if bv != av => {
                        out.insert(k.clone(), diff(av, bv));
                    }
                    Some(_) => {}
                }
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    out.insert(k.clone(), bv.clone());
                }
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

/// A Pod-like object with a map list (containers, env), a set (finalizers) and atomic args.
fn pod() -> impl Strategy<Value = Value> {
    let container = (
        prop::option::of("[a-c]"),
        prop::option::of(prop::collection::vec("[a-c]", 0..3)),
        prop::collection::btree_map("[A-C]", "[0-2]", 0..3),
    );
    (
        prop::collection::btree_map("[a-c]", "[a-c]", 0..3),
        prop::collection::btree_set("[a-c]", 0..3),
        prop::collection::btree_map("[a-c]", container, 0..3),
        prop::option::of(0i64..3),
    )
        .prop_map(|(labels, finalizers, containers, replicas)| {
            let containers: Vec<Value> = containers
                .into_iter()
                .map(|(name, (image, args, env))| {
                    let mut c = json!({"name": name});
                    if let Some(image) = image {
                        c["image"] = json!(image);
                    }
                    if let Some(args) = args {
                        c["args"] = json!(args);
                    }
                    if !env.is_empty() {
                        let env: Vec<Value> = env
                            .into_iter()
                            .map(|(n, v)| json!({"name": n, "value": v}))
                            .collect();
                        c["env"] = json!(env);
                    }
                    c
                })
                .collect();
            let mut obj = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": labels, "finalizers": finalizers},
                "spec": {"containers": containers}
            });
            if let Some(r) = replicas {
                obj["spec"]["replicas"] = json!(r);
            }
            obj
        })
}

fn opts(manager: &str) -> ApplyOptions<'_> {
    ApplyOptions {
        manager,
        force: false,
        api_version: "v1",
        time: "2024-01-01T00:00:00Z",
        subresource: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_patch_of_a_diff_yields_the_target(a in json_value(3), b in json_value(3)) {
        let mut out = a.clone();
        merge_patch(&mut out, &diff(&a, &b));
        prop_assert_eq!(out, b);
    }

    #[test]
    fn merge_patch_is_idempotent(a in json_value(3), p in json_value(3)) {
        let mut once = a.clone();
        merge_patch(&mut once, &p);
        let mut twice = once.clone();
        merge_patch(&mut twice, &p);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn strategic_without_schema_is_merge_patch(a in json_object(), p in json_object()) {
        let mut want = a.clone();
        merge_patch(&mut want, &p);
        let got = strategic_merge_patch(&a, &p, None::<&NoSchema>).unwrap();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn strategic_never_panics(a in wild_value(), p in wild_value()) {
        let before = (a.clone(), p.clone());
        let _ = strategic_merge_patch(&a, &p, Some(&schema()));
        let _ = strategic_merge_patch(&a, &p, None::<&NoSchema>);
        prop_assert_eq!((a, p), before);
    }

    #[test]
    fn apply_then_reapply_is_idempotent(live in json_object(), applied in json_object()) {
        let o = opts("m");
        let Ok(first) = server_side_apply(Some(&live), &applied, Some(&schema()), &ApplyOptions { force: true, ..o }) else {
            return Ok(());
        };
        let second = server_side_apply(Some(&first), &applied, Some(&schema()), &o).unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn two_appliers_then_reapply_is_idempotent(a in pod(), b in pod(), a2 in pod()) {
        let first = server_side_apply(None, &a, Some(&schema()), &opts("a")).unwrap();
        let forced = ApplyOptions { force: true, ..opts("b") };
        let second = server_side_apply(Some(&first), &b, Some(&schema()), &forced).unwrap();
        let third = server_side_apply(Some(&second), &a2, Some(&schema()), &ApplyOptions { force: true, ..opts("a") }).unwrap();
        let again = server_side_apply(Some(&third), &a2, Some(&schema()), &opts("a")).unwrap();
        prop_assert_eq!(&third, &again);
        // Whatever b applied and a did not take over is still there.
        let again_b = server_side_apply(Some(&third), &b, Some(&schema()), &ApplyOptions { force: true, ..opts("b") }).unwrap();
        let once_more = server_side_apply(Some(&again_b), &b, Some(&schema()), &opts("b")).unwrap();
        prop_assert_eq!(again_b, once_more);
    }

    #[test]
    fn apply_never_panics(live in wild_value(), applied in wild_value()) {
        let _ = server_side_apply(Some(&live), &applied, Some(&schema()), &opts("m"));
        let _ = server_side_apply(None, &applied, Some(&schema()), &opts("m"));
    }
}
