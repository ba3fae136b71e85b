//! The audit log through the HTTP handler of an in-process server: a request that failed
//! authentication is recorded without a user, a watch when its stream ends, bodies at the
//! level the policy gives with managed fields left out when it says so, a failure with its
//! Status, and every reply names its record in `Audit-Id`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use rotor_apiserver::audit::{Auditor, FileConfig, Policy};
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::Value;

const TOKEN: &str = "admin-token-0123456789";

const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
  - level: None
    nonResourceURLs: [/version]
  - level: RequestResponse
    resources: [{group: \"\", resources: [configmaps]}]
  - level: Metadata
";

struct Audited {
    server: Arc<ApiServer>,
    auditor: Arc<Auditor>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn audited() -> Audited {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.log");
    let file = FileConfig {
        path: log.clone(),
        max_bytes: 0,
        max_backups: 0,
    };
    let policy = Policy::parse(POLICY).expect("policy");
    let auditor = Auditor::start(policy, file).expect("auditor");
    let config = ServerConfig {
        token: Some(TOKEN.into()),
        anonymous_auth: false,
        audit: Some(auditor.clone()),
        ..ServerConfig::default()
    };
    let store = Arc::new(MemoryStore::default());
    let server = ApiServer::new(store, config).await.expect("server");
    Audited {
        server,
        auditor,
        log,
        _dir: dir,
    }
}

impl Audited {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> http::Response<Body> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("user-agent", "audit-test/1.0")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.server.handle(req).await
    }

    /// Closes the log and reads its records.
    async fn records(self) -> Vec<Value> {
        let bound = Duration::from_secs(10);
        self.auditor.close(bound).await.expect("closed");
        let text = std::fs::read_to_string(&self.log).expect("log");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

const CM: &str =
    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"v"}}"#;

#[tokio::test]
async fn records_follow_the_policy() {
    let a = audited().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let created = a.send("POST", cms, TOKEN, CM).await;
    assert_eq!(created.status(), 201);
    let id = created.headers().get("audit-id").expect("Audit-Id").clone();
    let again = a.send("POST", cms, TOKEN, CM).await;
    assert_eq!(again.status(), 409);
    let wrong = a.send("GET", cms, "wrong-token", "").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(a.send("GET", "/version", TOKEN, "").await.status(), 200);
    let watch = a.send("GET", &format!("{cms}?watch=1"), TOKEN, "").await;
    assert_eq!(watch.status(), 200);
    drop(watch);
    let records = a.records().await;

    let verbs: Vec<&str> = records.iter().filter_map(|r| r["verb"].as_str()).collect();
    assert_eq!(
        verbs,
        ["create", "create", "list", "watch"],
        "/version: level None"
    );
    let (create, conflict, refused, watch) = (&records[0], &records[1], &records[2], &records[3]);
    assert_eq!(create["auditID"].as_str(), id.to_str().ok());
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["objectRef"]["name"], "cm", "named from the reply");
    assert_eq!(create["user"]["username"], "rotor-admin");
    assert_eq!(create["userAgent"], "audit-test/1.0");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert!(
        create["responseStatus"].get("message").is_none(),
        "success: the code only"
    );
    assert_eq!(create["requestObject"]["data"]["k"], "v");
    assert_eq!(create["responseObject"]["metadata"]["name"], "cm");
    assert!(create["responseObject"]["metadata"]["uid"].is_string());
    let managed = &create["responseObject"]["metadata"]["managedFields"];
    assert!(managed.is_null(), "omitManagedFields: {managed}");
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    for stamp in ["requestReceivedTimestamp", "stageTimestamp"] {
        let t = create[stamp].as_str().expect("timestamp");
        let micros = t.rsplit('.').next().unwrap_or_default();
        assert_eq!(micros.len(), 7, "six digits and Z: {t}");
    }
    assert_eq!(conflict["responseStatus"]["code"], 409);
    assert_eq!(conflict["responseStatus"]["reason"], "AlreadyExists");
    assert_eq!(conflict["responseStatus"]["status"], "Failure");
    assert_eq!(refused["responseStatus"]["code"], 401);
    assert!(
        refused["user"].as_object().is_some_and(|u| u.is_empty()),
        "{refused}"
    );
    assert!(
        refused.get("annotations").is_none(),
        "not authorized at all: {refused}"
    );
    assert_eq!(watch["level"], "RequestResponse");
    assert_eq!(watch["responseStatus"]["code"], 200);
    assert!(
        watch.get("responseObject").is_none(),
        "a stream has no object"
    );
}
