//! What rotor's AWS integrations (the EKS provider, the Route 53 shifter) share: one way to build
//! the SDK's configuration, and one reading of the SDK's errors (tests reach a real moto through
//! `rotor-test-support`).
//!
//! The SDK is built without its default HTTPS client (that one compiles aws-lc from C); rotor
//! gives it the same hyper client with rustls on ring. Credentials come from the SDK's default
//! chain (environment, profile files, web identity, ECS/IMDS) unless given explicitly.

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The region used when neither the flag nor the environment names one. Every call of the EKS
/// provider sets the Cluster's own region; this only matters for global services (Route 53).
pub const DEFAULT_REGION: &str = "us-east-1";

/// How to reach AWS.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// An endpoint for every service instead of AWS's own (`http://127.0.0.1:5000`, a moto).
    pub endpoint_url: Option<String>,
    /// The default region; `AWS_REGION` / the profile otherwise, then [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Static credentials (tests against moto); the SDK's default chain otherwise.
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Every AWS call is bounded: a hung endpoint must not hold a reconcile forever.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK configuration for `options`.
pub async fn sdk_config(options: &AwsOptions) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some((id, secret)) = &options.static_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id,
            secret,
            None,
            None,
            "rotor-static",
        ));
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    // The loader's own chains (environment, profile, IMDS) are built with the HTTP client
    // above; a chain built apart from it would have none and panic at its first call.
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config
        .to_builder()
        .region(Region::new(DEFAULT_REGION))
        .build()
}

/// What a failed AWS call means for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not reached, timed out, or a 5xx: the same call may succeed later.
    Unavailable { message: String },
    /// Throttled (429 or a throttling error code): retry later, slower.
    Throttled { message: String },
    /// A 4xx the same request will get again: `code` is AWS's error code.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The answer could not be read.
    Protocol { message: String },
}

/// AWS's error codes that mean "slow down", whatever the HTTP status.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Classifies an SDK error. The messages carry AWS's code and message, never the request (the
/// SDK's own Display of a dispatch failure can include the URL, which holds no secret; the
/// signed headers are never printed).
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("Unknown").to_string();
            let message = format!(
                "{code}: {}",
                context.err().message().unwrap_or("no message")
            );
            if status == 429 || THROTTLING_CODES.contains(&code.as_str()) {
                Failure::Throttled { message }
            } else if status >= 500 {
                Failure::Unavailable { message }
            } else {
                Failure::Refused {
                    status,
                    code,
                    message,
                }
            }
        }
        SdkError::TimeoutError(_) => Failure::Unavailable {
            message: format!("no answer within {OPERATION_TIMEOUT:?}"),
        },
        SdkError::DispatchFailure(_) => Failure::Unavailable {
            message: format!("cannot reach AWS: {}", DisplayErrorContext(error)),
        },
        other => Failure::Protocol {
            message: DisplayErrorContext(other).to_string(),
        },
    }
}

/// The AWS error code of a service error, if the call got that far.
pub fn error_code<E>(error: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    }
}
