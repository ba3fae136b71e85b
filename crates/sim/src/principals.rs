//! Who a simulated managed cluster's API lets in besides its own token: the cloud access
//! tokens that have acted in the cluster's project (GKE) or subscription (AKS with Azure AD) —
//! what `gke-gcloud-auth-plugin`, `kubelogin` and rotor's token mode present. Real clouds ask
//! their IAM; the simulator has none, so a token that has called the cloud's API for that
//! project or subscription counts as one of its principals, and any other token is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rotor_apiserver::TokenReview;

/// The tokens that have acted in one project or subscription. Shared by its members, so a
/// token that acts later is accepted by clusters made earlier. Holds secrets: never printed.
#[derive(Default)]
pub(crate) struct Principals(Mutex<BTreeSet<String>>);

impl Principals {
    pub fn add(&self, token: &str) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !set.contains(token) {
            set.insert(token.to_string());
        }
    }

    fn contains(&self, token: &str) -> bool {
        let set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(token)
    }
}

/// The principals of every project (or subscription) of one cloud front.
#[derive(Default)]
pub(crate) struct Directory(Mutex<BTreeMap<String, Arc<Principals>>>);

impl Directory {
    /// The principals of `scope` (a project id, a subscription id).
    pub fn of(&self, scope: &str) -> Arc<Principals> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(scope.to_string()).or_default().clone()
    }
}

/// Installed on a cloud cluster's member: accepts its project's (subscription's) principals.
pub(crate) struct PrincipalTokens {
    /// The project or subscription, for debugging.
    pub scope: String,
    pub principals: Arc<Principals>,
}

impl std::fmt::Debug for PrincipalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalTokens")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenReview for PrincipalTokens {
    fn accepts(&self, token: &str) -> bool {
        self.principals.contains(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_scopes_principals_only_and_never_prints_them() {
        let directory = Directory::default();
        let review = PrincipalTokens {
            scope: "p".into(),
            principals: directory.of("p"),
        };
        assert!(!review.accepts("ya29.someone"));
        directory.of("p").add("ya29.someone");
        assert!(review.accepts("ya29.someone"), "a later principal counts");
        directory.of("q").add("ya29.other");
        assert!(!review.accepts("ya29.other"), "another project's");
        assert!(!review.accepts("ya29.forged"));
        assert!(!format!("{review:?}").contains("ya29"));
    }
}
