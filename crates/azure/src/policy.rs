//! Bearer tokens over plain http to a loopback address: azure_core's
//! `BearerTokenAuthorizationPolicy` refuses any non-https URL ("authorized requests are not
//! permitted for non-TLS protected endpoints"), and the simulator serves plain http. This policy
//! sets `Authorization: Bearer …` on each try, and only for a loopback http URL, so a token never
//! leaves the machine in clear text.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::AUTHORIZATION;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};

/// Whether `url` is plain http to this machine (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback_http(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// See the module: a bearer token per try, for loopback http only.
#[derive(Debug)]
pub(crate) struct LoopbackBearer {
    credential: Arc<dyn TokenCredential>,
    scope: &'static str,
}

impl LoopbackBearer {
    pub fn new(credential: Arc<dyn TokenCredential>, scope: &'static str) -> Self {
        LoopbackBearer { credential, scope }
    }
}

#[async_trait]
impl Policy for LoopbackBearer {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if !is_loopback_http(request.url()) {
            return Err(Error::with_message(
                ErrorKind::Credential,
                "a bearer token over plain http is sent to a loopback address only",
            ));
        }
        let token = self.credential.get_token(&[self.scope], None).await?;
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_this_machine_is_loopback_http() {
        for yes in [
            "http://127.0.0.1:8080/azure",
            "http://127.9.0.1/",
            "http://localhost:1",
            "http://[::1]:80/azure",
        ] {
            assert!(is_loopback_http(&Url::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "https://127.0.0.1/",
            "http://10.0.0.1/",
            "http://management.azure.com/",
            "http://localhost.example.com/",
        ] {
            assert!(!is_loopback_http(&Url::parse(no).unwrap()), "{no}");
        }
    }
}
