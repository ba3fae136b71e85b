//! Replies built from the store's bytes (a create's reply, GET, LIST: the stored JSON with the
//! revision spliced in) must say exactly what decoding the object and serialising it says.

use crate::common;

use common::{send, server};
use serde_json::{Value, json};

type Server = std::sync::Arc<rotor_apiserver::ApiServer>;

async fn post(server: &Server, collection: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string().into_bytes();
    send(server, "POST", collection, "application/json", body).await
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    send(server, "GET", path, "", Vec::new()).await
}

/// Creates `body` at `collection` and returns the reply and a GET of what was stored.
async fn create_and_get(server: &Server, collection: &str, body: Value) -> (Value, Value) {
    let (code, reply) = post(server, collection, &body).await;
    assert_eq!(code, 201, "create at {collection}: {reply}");
    let name = reply["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let (code, got) = get(server, &format!("{collection}/{name}")).await;
    assert_eq!(code, 200, "get {name}: {got}");
    (reply, got)
}

#[tokio::test]
async fn a_create_replies_what_a_get_returns() {
    let cases = [
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "plain", "labels": {"a": "b"}},
                   "data": {"k": "v \"quoted\" \u{e9}"}}),
        ),
        // An empty resourceVersion (some clients send one; a set one is refused, see
        // create_rules.rs) gives way to the revision the store assigned.
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"resourceVersion": "", "name": "with-rv"}}),
        ),
        // generateName, and metadata fields in an unusual order.
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"metadata": {"annotations": {"x": "y"}, "generateName": "web-"},
                   "kind": "Deployment", "apiVersion": "apps/v1",
                   "spec": {"selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
        // Stored in another resource's form (events.k8s.io is kept as a core Event).
        (
            "/apis/events.k8s.io/v1/namespaces/default/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                   "metadata": {"name": "ev"}, "eventTime": "2026-12-01T00:00:00.000000Z",
                   "reportingController": "rotor", "reportingInstance": "r-1",
                   "action": "Rotate", "reason": "Test", "regarding": {"kind": "Pod", "name": "p"}}),
        ),
        // Cluster-scoped.
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        ),
    ];
    let (server, _) = server().await;
    for (collection, body) in cases {
        let (reply, got) = create_and_get(&server, collection, body).await;
        assert_eq!(reply, got, "reply and GET differ at {collection}");
        let rv = reply["metadata"]["resourceVersion"].as_str().unwrap_or("");
        assert!(
            rv.parse::<u64>().is_ok_and(|n| n > 0),
            "resourceVersion {rv:?} at {collection}"
        );
        assert_ne!(rv, "12345");
        assert!(reply["metadata"]["uid"].is_string(), "{reply}");
    }
}

/// The resource behind a collection path of the cases below.
fn resource(
    server: &rotor_apiserver::ApiServer,
    group: &str,
    version: &str,
    plural: &str,
) -> std::sync::Arc<rotor_apiserver::registry::Resource> {
    server.resource(group, version, plural).expect("resource")
}

#[tokio::test]
async fn get_and_list_from_stored_bytes_match_decoded_objects() {
    // 1.25 serves autoscaling/v2 and v2beta2 from one storage.
    let store = std::sync::Arc::new(rotor_store::memory::MemoryStore::default());
    let config = rotor_apiserver::ServerConfig {
        kubernetes_minor: 25,
        ..Default::default()
    };
    let server = rotor_apiserver::ApiServer::new(store, config)
        .await
        .expect("server");
    for i in 0..5 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "labels": {"n": i.to_string()}},
            "data": {"k": format!("v{i}")}});
        let (code, _) = post(&server, "/api/v1/namespaces/default/configmaps", &body).await;
        assert_eq!(code, 201);
    }
    // An HPA written at autoscaling/v2 and read at v2beta2 (one storage): that read must decode.
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3}});
    let (code, reply) = post(
        &server,
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
        &hpa,
    )
    .await;
    assert_eq!(code, 201, "{reply}");

    let cms = resource(&server, "", "v1", "configmaps");
    let (code, got) = get(&server, "/api/v1/namespaces/default/configmaps/cm-3").await;
    assert_eq!(code, 200);
    let decoded = server
        .get(&cms, Some("default"), "cm-3")
        .await
        .expect("get");
    assert_eq!(got, decoded);
    assert_eq!(got["data"]["k"], "v3");

    let (code, listed) = get(&server, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(code, 200);
    let decoded = server
        .list(&cms, Some("default"), &Default::default())
        .await
        .expect("list");
    assert_eq!(listed, decoded);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(listed["kind"], "ConfigMapList");

    // Paginated and selected lists agree too (continue token, decoded matches).
    for query in [
        "?limit=2",
        "?labelSelector=n%3D4",
        "?fieldSelector=metadata.name%3Dcm-1",
    ] {
        let (code, page) = get(
            &server,
            &format!("/api/v1/namespaces/default/configmaps{query}"),
        )
        .await;
        assert_eq!(code, 200, "{query}: {page}");
        let want = if query == "?limit=2" { 2 } else { 1 };
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(want),
            "{query}"
        );
        if query == "?limit=2" {
            assert!(page["metadata"]["continue"].is_string(), "{page}");
        }
    }

    let beta = resource(
        &server,
        "autoscaling",
        "v2beta2",
        "horizontalpodautoscalers",
    );
    for path in ["", "/web"] {
        let (code, got) = get(
            &server,
            &format!("/apis/autoscaling/v2beta2/namespaces/default/horizontalpodautoscalers{path}"),
        )
        .await;
        assert_eq!(code, 200, "{got}");
        let decoded = if path.is_empty() {
            server
                .list(&beta, Some("default"), &Default::default())
                .await
        } else {
            server.get(&beta, Some("default"), "web").await
        };
        assert_eq!(got, decoded.expect("read"), "at v2beta2{path}");
        let obj = if path.is_empty() {
            &got["items"][0]
        } else {
            &got
        };
        assert_eq!(obj["apiVersion"], "autoscaling/v2beta2", "{got}");
    }
}

/// The lines of a watch that runs for a second while `change` writes.
async fn watch_lines(
    server: &std::sync::Arc<rotor_apiserver::ApiServer>,
    query: &str,
) -> Vec<Value> {
    let req = http::Request::builder()
        .method("GET")
        .uri(format!(
            "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1{query}"
        ))
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = server.handle(req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn watch_events_from_stored_bytes_match_decoded_ones() {
    let (server, _) = server().await;
    for name in ["a", "b"] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "x"}}, "data": {"k": name}});
        let (code, _) = post(&server, "/api/v1/namespaces/default/configmaps", &body).await;
        assert_eq!(code, 201);
    }
    let cms = resource(&server, "", "v1", "configmaps");
    let before_a = server.get(&cms, Some("default"), "a").await.expect("a");
    let writer = {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let patch = json!({"data": {"k": "changed"}}).to_string().into_bytes();
            let (code, _) = send(
                &server,
                "PATCH",
                "/api/v1/namespaces/default/configmaps/a",
                "application/merge-patch+json",
                patch,
            )
            .await;
            assert_eq!(code, 200);
            let (code, _) = send(
                &server,
                "DELETE",
                "/api/v1/namespaces/default/configmaps/b",
                "application/json",
                Vec::new(),
            )
            .await;
            assert_eq!(code, 200);
        })
    };
    // Without a selector every line comes from stored bytes; with one matching all, decoded.
    let (plain, selected) = tokio::join!(
        watch_lines(&server, ""),
        watch_lines(&server, "&labelSelector=app%3Dx")
    );
    writer.await.expect("writer");
    let kinds: Vec<&str> = plain.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ADDED", "ADDED", "MODIFIED", "DELETED"],
        "{plain:?}"
    );
    assert_eq!(plain, selected);
    assert_eq!(plain[0]["object"], before_a);
    let after_a = server.get(&cms, Some("default"), "a").await.expect("a");
    assert_eq!(plain[2]["object"], after_a);
    let rv = |e: &Value| {
        e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("resourceVersion")
    };
    // A deletion is reported at the revision of the delete, after every earlier event.
    assert!(rv(&plain[3]) > rv(&plain[2]), "{plain:?}");
    assert_eq!(plain[3]["object"]["data"]["k"], "b");
}
