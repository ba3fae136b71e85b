//! Arbitrary request bodies and patches never panic the server, always get a 4xx Status, and
//! never leave a half-written object behind.

use crate::common;

use common::{send, server};
use proptest::prelude::*;
use rotor_store::Store;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// JSON-ish noise: valid JSON of random shape, or random bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::json!(null)),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z$/.]{0,8}".prop_map(serde_json::Value::from)
    ];
    let json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("name".to_string()),
                    Just("$patch".to_string()),
                    "[a-z]{1,6}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        json.prop_map(|v| serde_json::to_vec(&v).expect("json")),
        proptest::collection::vec(any::<u8>(), 0..64)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn garbage_never_panics_or_half_writes(create in body(), patch in body(), kind in 0usize..4) {
        let rt = runtime();
        rt.block_on(async {
            let (server, store) = server().await;
            let before = store.current_revision().await.expect("rev");
            let path = ["/api/v1/namespaces/default/configmaps", "/apis/apps/v1/namespaces/default/deployments", "/api/v1/namespaces", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"][kind];
            let (code, status) = send(&server, "POST", path, "application/json", create).await;
            if code >= 400 {
                prop_assert!(code < 500, "client garbage is a 4xx, got {code}: {status}");
                prop_assert_eq!(&status["kind"], "Status");
                prop_assert_eq!(store.current_revision().await.expect("rev"), before, "a failed create wrote nothing");
            }
            // A patch of any type on an existing object either applies or leaves it untouched.
            let cm = serde_json::to_vec(&serde_json::json!({"metadata": {"name": "target"}, "data": {"a": "b"}})).expect("json");
            let (code, _) = send(&server, "POST", "/api/v1/namespaces/default/configmaps", "application/json", cm).await;
            prop_assert!(code == 201 || code == 409);
            for ct in ["application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"] {
                let path = if ct.starts_with("application/apply") { "/api/v1/namespaces/default/configmaps/target?fieldManager=fuzz" } else { "/api/v1/namespaces/default/configmaps/target" };
                let rev = store.current_revision().await.expect("rev");
                let (code, status) = send(&server, "PATCH", path, ct, patch.clone()).await;
                prop_assert!(code < 500, "{ct}: {code} {status}");
                if code >= 400 {
                    prop_assert_eq!(&status["kind"], "Status");
                    prop_assert_eq!(store.current_revision().await.expect("rev"), rev, "a failed {} wrote nothing", ct);
                }
            }
            Ok(())
        })?;
    }
}
