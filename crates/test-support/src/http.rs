//! Plain-HTTP requests whose headers a test reads (which backend answered, through which
//! router), bounded in time.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET url`: its status, headers and body, or what went wrong.
pub async fn get(url: &str) -> anyhow::Result<(u16, http::HeaderMap, Vec<u8>)> {
    get_as(url, None).await
}

/// `GET url` with `Authorization: Bearer {token}` when given.
pub async fn get_as(
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, http::HeaderMap, Vec<u8>)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut request = http::Request::get(url.parse::<http::Uri>()?);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Empty::new())?;
    let call = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes().to_vec();
        anyhow::Ok((parts.status.as_u16(), parts.headers, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
}
