//! The simulator's cloud, reached over HTTP like a real cloud API (`rotor sim` serves it at
//! `/cloud/clusters`): create (idempotent by name + token), describe, delete, credentials.
//! One simulated cloud has no regions: the placement is not sent.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;

use crate::{
    Instance, InstanceSpec, InstanceState, Kubeconfig, Placement, Provider, ProviderError,
};

/// Bounds every call to the simulated cloud.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kubeconfig cluster extension rotor's clients read as "speaks HTTP/2 over plain HTTP"
/// (`rotor_api::client::H2C_EXTENSION`, which this crate does not depend on).
pub const H2C_EXTENSION: &str = "rotor.dev/h2c";

/// The sim cloud's cluster record (see `rotor_sim::CloudCluster`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloudCluster {
    name: String,
    kubernetes_version: String,
    state: InstanceState,
    message: String,
    /// `127.1.0.5:PORT`, once the member runs and serves traffic.
    #[serde(default)]
    traffic_address: Option<String>,
}

pub struct SimProvider {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for SimProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimProvider")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl SimProvider {
    /// A provider for the simulator serving at `base_url` (`http://127.0.0.1:7443`).
    pub fn new(base_url: &str) -> Self {
        Self::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(base_url: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        SimProvider {
            base: base_url.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// One call: (status, body). Connection errors and timeouts are `Unavailable`.
    async fn call(
        &self,
        operation: &'static str,
        instance: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Option<Duration>, Bytes), ProviderError> {
        let unavailable = |message: String| ProviderError::Unavailable {
            operation,
            instance: instance.to_string(),
            message,
        };
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(payload))
            .map_err(|e| ProviderError::Protocol {
                operation,
                instance: instance.to_string(),
                message: e.to_string(),
            })?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                unavailable(format!(
                    "cannot reach the simulated cloud at {}: {e}",
                    self.base
                ))
            })?;
            let status = resp.status();
            // Retry-After in seconds (the HTTP-date form is not used by cloud APIs we know).
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unavailable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ProviderError>((status, retry_after, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
    }

    /// Maps a non-success status to the error class callers act on.
    fn error(
        operation: &'static str,
        instance: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        let instance = instance.to_string();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return ProviderError::RateLimited {
                operation,
                instance,
                retry_after,
                message: format!("{status}: {message}"),
            };
        }
        if status.is_server_error() {
            ProviderError::Unavailable {
                operation,
                instance,
                message: format!("{status}: {message}"),
            }
        } else {
            ProviderError::Refused {
                operation,
                instance,
                status: status.as_u16(),
                message,
            }
        }
    }

    fn parse(
        operation: &'static str,
        instance: &str,
        body: &[u8],
    ) -> Result<Instance, ProviderError> {
        let c: CloudCluster =
            serde_json::from_slice(body).map_err(|e| ProviderError::Protocol {
                operation,
                instance: instance.to_string(),
                message: e.to_string(),
            })?;
        let traffic_address = c
            .traffic_address
            .map(|a| a.parse())
            .transpose()
            .map_err(|e| ProviderError::Protocol {
                operation,
                instance: instance.to_string(),
                message: format!("trafficAddress: {e}"),
            })?;
        Ok(Instance {
            name: c.name,
            kubernetes_version: c.kubernetes_version,
            state: c.state,
            message: c.message,
            endpoint: None,
            traffic_address,
        })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/clusters/{name}", self.base)
    }
}

#[async_trait]
impl Provider for SimProvider {
    async fn create_instance(
        &self,
        _at: &Placement,
        spec: &InstanceSpec,
    ) -> Result<Instance, ProviderError> {
        const OP: &str = "create";
        let body = json!({"name": spec.name, "kubernetesVersion": spec.kubernetes_version, "idempotencyToken": spec.idempotency_token});
        let (status, retry_after, bytes) = self
            .call(OP, &spec.name, Method::POST, "/cloud/clusters", Some(body))
            .await?;
        if !status.is_success() {
            return Err(Self::error(OP, &spec.name, status, retry_after, &bytes));
        }
        let mut instance = Self::parse(OP, &spec.name, &bytes)?;
        instance.endpoint = Some(self.endpoint(&spec.name));
        Ok(instance)
    }

    async fn get_instance(
        &self,
        _at: &Placement,
        name: &str,
    ) -> Result<Option<Instance>, ProviderError> {
        const OP: &str = "describe";
        let (status, retry_after, bytes) = self
            .call(
                OP,
                name,
                Method::GET,
                &format!("/cloud/clusters/{name}"),
                None,
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let mut instance = Self::parse(OP, name, &bytes)?;
                instance.endpoint = Some(self.endpoint(name));
                Ok(Some(instance))
            }
            s => Err(Self::error(OP, name, s, retry_after, &bytes)),
        }
    }

    async fn delete_instance(&self, _at: &Placement, name: &str) -> Result<(), ProviderError> {
        const OP: &str = "delete";
        let (status, retry_after, bytes) = self
            .call(
                OP,
                name,
                Method::DELETE,
                &format!("/cloud/clusters/{name}"),
                None,
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(()),
            s if s.is_success() => Ok(()),
            s => Err(Self::error(OP, name, s, retry_after, &bytes)),
        }
    }

    async fn credentials(&self, _at: &Placement, name: &str) -> Result<Kubeconfig, ProviderError> {
        const OP: &str = "credentials";
        let (status, retry_after, bytes) = self
            .call(
                OP,
                name,
                Method::GET,
                &format!("/cloud/clusters/{name}/credentials"),
                None,
            )
            .await?;
        if status == StatusCode::CONFLICT {
            // The sim cloud answers 409 while the instance is not Running yet.
            let ProviderError::Refused { message, .. } =
                Self::error(OP, name, status, retry_after, &bytes)
            else {
                return Err(Self::error(OP, name, status, retry_after, &bytes));
            };
            return Err(ProviderError::NotReady {
                operation: OP,
                instance: name.to_string(),
                message,
            });
        }
        if !status.is_success() {
            return Err(Self::error(OP, name, status, retry_after, &bytes));
        }
        let token = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(String::from))
            .ok_or_else(|| ProviderError::Protocol {
                operation: OP,
                instance: name.to_string(),
                message: "no token in the answer".into(),
            })?;
        let mut cluster = json!({"server": self.endpoint(name)});
        if self.base.starts_with("http://") {
            // The simulator speaks HTTP/2 with prior knowledge: rotor's clients multiplex its
            // members' watches on a few connections.
            cluster["extensions"] = json!([{"name": H2C_EXTENSION, "extension": true}]);
        }
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        });
        Ok(Kubeconfig::new(kubeconfig.to_string()))
    }
}
