//! A short cache of verified ServiceAccount tokens. Checking one costs a signature
//! verification and a store read (~1.5 ms on a debug build); a component polling with the same
//! token pays that once per [`TTL`]. Entries are keyed by the token's SHA-256, never the token,
//! live at most the TTL and never past the token's `exp`, so a deleted ServiceAccount stops
//! authenticating within the TTL. Only successes are kept: a refused token is judged afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::UserInfo;

/// How long a verified token is believed: upstream's authenticated-token cache TTL.
pub const TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; past it expired ones go, and if all are live the cache starts over
/// (a flood of distinct tokens costs verification, never memory).
pub const CAPACITY: usize = 4096;

struct Entry {
    user: UserInfo,
    until: Instant,
}

/// Users of recently verified tokens, by the tokens' digests.
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(TTL, CAPACITY)
    }
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> TokenCache {
        TokenCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The user `token` was verified as, if that was less than the TTL ago.
    pub fn get(&self, token: &str) -> Option<UserInfo> {
        let key = digest(token);
        let mut entries = self.lock();
        match entries.get(&key) {
            Some(e) if e.until > Instant::now() => Some(e.user.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `token`, valid for `expires_in` more, is `user`.
    pub fn put(&self, token: &str, user: UserInfo, expires_in: Duration) {
        let now = Instant::now();
        let until = now + self.ttl.min(expires_in);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.until > now);
        }
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(digest(token), Entry { user, until });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::auth::ServiceAccountTokens;
    use crate::auth::service_account::{Named, generate_key};
    use crate::server::{ApiServer, ServerConfig, WriteOptions};

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn entries_end_with_their_token_and_the_cache_stays_bounded() {
        let cache = TokenCache::new(Duration::from_secs(60), 2);
        cache.put("t1", user("a"), Duration::from_secs(60));
        assert_eq!(cache.get("t1"), Some(user("a")));
        assert_eq!(cache.get("t2"), None);
        cache.put("t2", user("b"), Duration::ZERO);
        assert_eq!(cache.get("t2"), None, "an expired token is not believed");
        cache.put("t3", user("c"), Duration::from_secs(60));
        cache.put("t4", user("d"), Duration::from_secs(60));
        assert!(cache.len() <= 2, "{} entries", cache.len());
        assert_eq!(cache.get("t4"), Some(user("d")));
    }

    /// A server issuing ServiceAccount tokens whose cache believes them for `ttl`.
    async fn server(ttl: Duration) -> Arc<ApiServer> {
        let key = generate_key().expect("key");
        let tokens = ServiceAccountTokens::new("rotor", &[], &key, "test")
            .expect("tokens")
            .with_cache(TokenCache::new(ttl, 16));
        let config = ServerConfig {
            token: Some("admin-token-for-the-test".into()),
            service_accounts: Some(Arc::new(tokens)),
            ..ServerConfig::default()
        };
        let store = Arc::new(rotor_store::memory::MemoryStore::default());
        ApiServer::new(store, config).await.expect("server")
    }

    #[tokio::test]
    async fn a_deleted_service_account_stops_authenticating_within_the_ttl() {
        let ttl = Duration::from_millis(500);
        let server = server(ttl).await;
        let res = server
            .registry()
            .lookup("", "v1", "serviceaccounts")
            .expect("serviceaccounts");
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci"}});
        let created = server
            .create(&res, Some("default"), sa, &WriteOptions::default())
            .await
            .expect("created");
        let uid = created.object["metadata"]["uid"].as_str().expect("uid");
        let account = Named {
            namespace: "default".into(),
            name: "ci".into(),
            uid: uid.into(),
        };
        let accounts = server.config().service_accounts.clone().expect("accounts");
        let now = chrono::Utc::now().timestamp();
        let token = accounts.issue(&account, &[], now, 600).expect("token");
        let who = crate::auth::by_token(&server, &token)
            .await
            .expect("authenticated");
        assert_eq!(who.name, "system:serviceaccount:default:ci");
        assert_eq!(accounts.cache().len(), 1, "the verdict is kept");

        server
            .delete(&res, Some("default"), "ci", &json!({}), false)
            .await
            .expect("deleted");
        let deleted = Instant::now();
        // Believed from the cache at most `ttl` more, then refused.
        while crate::auth::by_token(&server, &token).await.is_some() {
            assert!(
                deleted.elapsed() <= ttl,
                "still authenticated {:?} after the deletion",
                deleted.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(crate::auth::by_token(&server, &token).await.is_none());
        assert!(accounts.cache().is_empty(), "a refusal is not kept");
    }
}
