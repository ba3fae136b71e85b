//! Credentials read from a file holding an OAuth access token, as gcloud's
//! `--access-token-file`: for a control plane whose tokens another process keeps fresh (a
//! sidecar, a CI job), and for the simulator. The file is read at every call, so a token
//! rewritten in place is used from the next call on; its content never reaches a log or error.

use std::path::PathBuf;

use google_cloud_auth::credentials::{
    AccessToken, AccessTokenCredentials, AccessTokenCredentialsProvider, CacheableResource,
    CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{HeaderMap, HeaderValue};

/// Credentials presenting the token held in `path` (surrounding whitespace ignored).
pub fn token_file(path: impl Into<PathBuf>) -> AccessTokenCredentials {
    AccessTokenCredentials::from(TokenFile(path.into()))
}

#[derive(Debug)]
struct TokenFile(PathBuf);

impl TokenFile {
    fn read(&self) -> Result<String, CredentialsError> {
        let path = self.0.display();
        // A missing or unreadable file may be a refresher's rename in progress: transient.
        let text = std::fs::read_to_string(&self.0).map_err(|e| {
            CredentialsError::from_msg(true, format!("access token file {path}: {e}"))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(CredentialsError::from_msg(
                true,
                format!("access token file {path} is empty"),
            ));
        }
        Ok(token.to_string())
    }
}

impl CredentialsProvider for TokenFile {
    async fn headers(
        &self,
        _: http::Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.read()?)).map_err(|_| {
                CredentialsError::from_msg(
                    false,
                    format!(
                        "access token file {}: not a valid header value",
                        self.0.display()
                    ),
                )
            })?;
        value.set_sensitive(true);
        let headers = HeaderMap::from_iter([(http::header::AUTHORIZATION, value)]);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

impl AccessTokenCredentialsProvider for TokenFile {
    async fn access_token(&self) -> Result<AccessToken, CredentialsError> {
        Ok(AccessToken {
            token: self.read()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rewritten_token_is_used_from_the_next_call_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("rotor-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "ya29.first\n").unwrap();
        let creds = token_file(&path);
        assert_eq!(creds.access_token().await.unwrap().token, "ya29.first");
        std::fs::write(&path, "ya29.second").unwrap();
        assert_eq!(creds.access_token().await.unwrap().token, "ya29.second");
        assert!(!format!("{creds:?}").contains("ya29"));

        std::fs::write(&path, "  \n").unwrap();
        let empty = creds.access_token().await.unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
        std::fs::remove_file(&path).unwrap();
        let missing = creds.access_token().await.unwrap_err();
        assert!(missing.is_transient(), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
