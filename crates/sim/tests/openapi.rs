//! The OpenAPI v3 index of a member, reached through the simulator's `/clusters/NAME/` prefix,
//! hands out `serverRelativeURL`s under that prefix: a client that follows them (kubectl's
//! `explain` and client-side validation do, as relative-to-host paths) reaches the document.

use std::net::SocketAddr;

use rotor_sim::{Sim, SimConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nAccept: application/json\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    // Chunked or not, the JSON document is between the first `{` and the last `}`.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&body[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (code, json)
}

#[tokio::test]
async fn openapi_v3_urls_carry_the_simulators_prefix() {
    let sim = Sim::new(SimConfig {
        nodes: 1,
        ..SimConfig::default()
    });
    let member = sim.add_cluster("m", 34).await.expect("member");
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    let (code, index) = get(addr, "/clusters/m/openapi/v3", &member.token).await;
    assert_eq!(code, 200, "{index}");
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 listed")
        .to_string();
    assert!(
        url.starts_with("/clusters/m/openapi/v3/apis/apps/v1?hash="),
        "{url}"
    );
    let (code, doc) = get(addr, &url, &member.token).await;
    assert_eq!(code, 200);
    assert!(
        doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object(),
        "the document of apps/v1"
    );
}
