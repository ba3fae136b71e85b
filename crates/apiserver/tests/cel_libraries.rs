//! Kubernetes' CEL libraries in CRD rules, as kube-apiserver evaluates them: `url()`, `ip()`,
//! `cidr()` and `quantity()` with their methods. Each rule lets a valid object through and
//! refuses an invalid one with 422, naming the field and the rule's message.

use crate::common;

use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const ENDPOINTS: &str = "/apis/example.com/v1/namespaces/default/endpoints";

fn string_with(rule: &str, message: &str) -> Value {
    json!({"type": "string", "x-kubernetes-validations": [{"rule": rule, "message": message}]})
}

/// An Endpoint: a URL, an address, a network, a memory request and limit, each with a rule.
fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "endpoints.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "endpoints", "singular": "endpoint", "kind": "Endpoint"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object",
                        "x-kubernetes-validations": [{
                            "rule": "!has(self.request) || !has(self.limit) || quantity(self.request).compareTo(quantity(self.limit)) <= 0",
                            "message": "request must not exceed limit"}],
                        "properties": {
                            "url": string_with(
                                "isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname().endsWith('.example.com') && url(self).getQuery().size() == 0",
                                "an https URL on example.com without a query"),
                            "address": string_with(
                                "isIP(self) && ip(self).family() == 4 && !ip(self).isLoopback()",
                                "an IPv4 address, not loopback"),
                            "network": string_with(
                                "isCIDR(self) && cidr(self).prefixLength() >= 16 && cidr('10.0.0.0/8').containsCIDR(cidr(self))",
                                "a /16 or smaller inside 10.0.0.0/8"),
                            "request": string_with(
                                "isQuantity(self) && quantity(self).isGreaterThan(quantity('0')) && quantity(self).isLessThan(quantity('2Gi'))",
                                "between 0 and 2Gi"),
                            "limit": {"type": "string"}}}}}}}]}})
}

fn endpoint(name: &str, spec: Value) -> Vec<u8> {
    json!({"apiVersion": "example.com/v1", "kind": "Endpoint",
        "metadata": {"name": name}, "spec": spec})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn library_functions_in_rules_refuse_what_upstream_refuses() {
    let (server, _) = common::server().await;
    let (code, reply) = common::send(
        &server,
        "POST",
        CRDS,
        "application/json",
        crd().to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{reply}");
    let valid = json!({"url": "https://api.example.com:8443/v1", "address": "10.1.2.3",
        "network": "10.20.0.0/16", "request": "512Mi", "limit": "1Gi"});
    let (code, reply) = common::send(
        &server,
        "POST",
        ENDPOINTS,
        "application/json",
        endpoint("ok", valid.clone()),
    )
    .await;
    assert_eq!(code, 201, "{reply}");

    let cases = [
        (
            "url",
            json!("http://api.example.com/"),
            "spec.url",
            "an https URL on example.com without a query",
        ),
        (
            "url",
            json!("https://api.example.com/?debug=1"),
            "spec.url",
            "an https URL on example.com without a query",
        ),
        (
            "url",
            json!("api.example.com"),
            "spec.url",
            "an https URL on example.com without a query",
        ),
        (
            "address",
            json!("127.0.0.1"),
            "spec.address",
            "an IPv4 address, not loopback",
        ),
        (
            "address",
            json!("fd00::1"),
            "spec.address",
            "an IPv4 address, not loopback",
        ),
        (
            "address",
            json!("::ffff:10.0.0.1"),
            "spec.address",
            "an IPv4 address, not loopback",
        ),
        (
            "network",
            json!("10.0.0.0/12"),
            "spec.network",
            "a /16 or smaller inside 10.0.0.0/8",
        ),
        (
            "network",
            json!("192.168.0.0/16"),
            "spec.network",
            "a /16 or smaller inside 10.0.0.0/8",
        ),
        ("request", json!("3Gi"), "spec.request", "between 0 and 2Gi"),
        (
            "request",
            json!("a lot"),
            "spec.request",
            "between 0 and 2Gi",
        ),
        (
            "limit",
            json!("256Mi"),
            "spec",
            "request must not exceed limit",
        ),
    ];
    for (i, (key, value, field, message)) in cases.into_iter().enumerate() {
        let mut spec = valid.clone();
        spec[key] = value.clone();
        let name = format!("bad-{i}");
        let (code, reply) = common::send(
            &server,
            "POST",
            ENDPOINTS,
            "application/json",
            endpoint(&name, spec),
        )
        .await;
        assert_eq!(code, 422, "{key}={value}: {reply}");
        let causes = reply["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            causes.iter().any(|c| c["field"] == field
                && c["message"].as_str().is_some_and(|m| m.contains(message))),
            "{key}={value}: {causes:?}"
        );
        let (code, _) = common::send(
            &server,
            "GET",
            &format!("{ENDPOINTS}/{name}"),
            "application/json",
            vec![],
        )
        .await;
        assert_eq!(code, 404, "nothing stored for {key}={value}");
    }
}
