//! What rotor's Azure integrations (the AKS provider, the Traffic Manager shifter) share: one
//! way to reach Azure Resource Manager, and one reading of its errors.
//!
//! No maintained crate covers `Microsoft.ContainerService` or Traffic Manager's
//! `Microsoft.Network/trafficmanagerprofiles` (the `azure_mgmt_*` crates are retired and pin an
//! old `azure_core`), so rotor sends its few typed requests through `azure_core`'s [`Pipeline`]
//! (retries, request ids, user agent) with JSON bodies written from the official REST
//! specification. The transport is reqwest with rustls on ring, as the rest of
//! rotor (no aws-lc, no OpenSSL); credentials come from [`credentials::chain`] unless given.

pub mod credentials;
mod errors;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::{
    HeaderName, Headers, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS,
};
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, RetryHeaders};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, Pipeline, PipelineOptions, Request,
    RetryOptions, StatusCode, Transport,
};

pub use azure_core::credentials::Secret;
pub use azure_core::http::{Method, Url};
pub use errors::{Failure, classify};
pub use policy::is_loopback_http;

/// Azure Resource Manager in Azure's public cloud.
pub const MANAGEMENT_ENDPOINT: &str = "https://management.azure.com";
/// The scope of a token for Resource Manager.
pub const MANAGEMENT_SCOPE: &str = "https://management.azure.com/.default";

/// Every ARM call is bounded: a hung endpoint must not hold a reconcile forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach Azure.
#[derive(Clone, Default)]
pub struct AzureOptions {
    /// Resource Manager's URL instead of [`MANAGEMENT_ENDPOINT`] (the simulator:
    /// `http://127.0.0.1:8080/azure`). Plain http only on a loopback address.
    pub endpoint: Option<String>,
    /// The credential to act with; `None`: [`credentials::chain`].
    pub credential: Option<Arc<dyn TokenCredential>>,
}

impl std::fmt::Debug for AzureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureOptions")
            .field("endpoint", &self.endpoint)
            .field("credential", &self.credential.as_ref().map(|_| "<given>"))
            .finish()
    }
}

/// Why an [`Arm`] client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Azure endpoint {endpoint:?} is not a URL: {message}")]
    BadEndpoint { endpoint: String, message: String },
    #[error(
        "Azure endpoint {endpoint:?}: plain http carries bearer tokens in clear text, so rotor \
         allows it on a loopback address only (a local simulator); use https"
    )]
    InsecureEndpoint { endpoint: String },
    #[error("no Azure credential: {0}")]
    NoCredential(String),
    #[error("Azure HTTP client: {0}")]
    Transport(String),
}

/// An answer of Resource Manager with a success status.
#[derive(Debug)]
pub struct ArmResponse {
    pub status: u16,
    headers: Headers,
    pub body: Vec<u8>,
}

impl ArmResponse {
    /// A header's value (`Azure-AsyncOperation`, `Location`, `Retry-After`).
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from_static(name))
    }

    /// The body as `T`; an unreadable body is a protocol failure.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| Failure::Protocol {
            message: format!("unreadable ARM answer (HTTP {}): {e}", self.status),
        })
    }
}

/// A Resource Manager client: one pipeline for every subscription.
#[derive(Debug, Clone)]
pub struct Arm {
    pipeline: Pipeline,
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
}

impl Arm {
    /// A client for `options`: rotor's credential chain unless one is given, the bearer policy
    /// azure_core has over https, rotor's own over loopback http (azure_core's refuses http).
    pub fn new(options: AzureOptions) -> Result<Arm, ConfigError> {
        install_crypto_provider();
        let raw = options
            .endpoint
            .unwrap_or_else(|| MANAGEMENT_ENDPOINT.to_string());
        let endpoint =
            Url::parse(raw.trim_end_matches('/')).map_err(|e| ConfigError::BadEndpoint {
                endpoint: raw.clone(),
                message: e.to_string(),
            })?;
        let loopback = is_loopback_http(&endpoint);
        if endpoint.scheme() != "https" && !loopback {
            return Err(ConfigError::InsecureEndpoint { endpoint: raw });
        }
        let credential = match options.credential {
            Some(c) => c,
            None => credentials::chain().map_err(ConfigError::NoCredential)?,
        };
        let auth: Arc<dyn Policy> = if loopback {
            Arc::new(policy::LoopbackBearer::new(
                credential.clone(),
                MANAGEMENT_SCOPE,
            ))
        } else {
            Arc::new(BearerTokenAuthorizationPolicy::new(
                credential.clone(),
                [MANAGEMENT_SCOPE],
            ))
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            client_options()?,
            Vec::new(),
            vec![auth],
            Some(pipeline_options()),
        );
        Ok(Arm {
            pipeline,
            endpoint,
            credential,
        })
    }

    /// A token for `scope` from the credential this client acts with: what an AKS cluster
    /// with Azure AD takes for its API (its server application's scope), so that rotor needs
    /// no `kubelogin`. Failures are classed as a call's.
    pub async fn token(&self, scope: &str) -> Result<Secret, Failure> {
        self.credential
            .get_token(&[scope], None)
            .await
            .map(|t| t.token)
            .map_err(|e| classify(&e))
    }

    /// The endpoint's URL for an ARM `path` (`/subscriptions/…`) at `api_version`.
    pub fn url(&self, path: &str, api_version: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        url
    }

    /// `link` (an `Azure-AsyncOperation` or `Location` answered by ARM) when it points at this
    /// client's endpoint: a token is never sent to another origin.
    pub fn link(&self, link: &str) -> Option<Url> {
        let url = Url::parse(link).ok()?;
        let base = self.endpoint.path().trim_end_matches('/');
        (url.origin() == self.endpoint.origin() && url.path().starts_with(base)).then_some(url)
    }

    /// Sends one request; any status but 2xx is a [`Failure`] (see [`classify`]).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        headers: &[(&'static str, &str)],
    ) -> Result<ArmResponse, Failure> {
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        for (name, value) in headers {
            request.insert_header(*name, value.to_string());
        }
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(body.to_string());
        }
        let answer = self
            .pipeline
            .send(&Context::new(), &mut request, None)
            .await
            .map_err(|e| classify(&e))?;
        let (status, headers, body) = answer.deconstruct();
        Ok(ArmResponse {
            status: u16::from(status),
            headers,
            body: body.to_vec(),
        })
    }
}

/// A few tries in the client only, and not on 429: rotor's controllers back off with their own
/// policy and the Retry-After ARM sent, where the default (8 retries, 60 s, 429 included) would
/// hold a reconcile for a minute.
fn client_options() -> Result<ClientOptions, ConfigError> {
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::Transport(e.to_string()))?;
    Ok(ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(10),
            max_delay: azure_core::time::Duration::seconds(2),
        }),
        ..ClientOptions::default()
    })
}

/// Retries on 408 and 5xx only (see [`client_options`]); the wait headers azure_core reads.
fn pipeline_options() -> PipelineOptions {
    PipelineOptions {
        retry_headers: RetryHeaders {
            retry_headers: vec![X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
        },
        retry_status_codes: vec![
            StatusCode::RequestTimeout,
            StatusCode::InternalServerError,
            StatusCode::BadGateway,
            StatusCode::ServiceUnavailable,
            StatusCode::GatewayTimeout,
        ],
    }
}

/// reqwest is built with rustls and no crypto provider (its default would be aws-lc, a C
/// build): the process's default is used, ring's unless one is set.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
