//! Who a simulated GKE cluster's API lets in besides its own token: the Google OAuth access
//! tokens that have acted in the cluster's project (what `gke-gcloud-auth-plugin` and rotor's
//! token mode present). Real GKE asks IAM; the simulator has none, so a token that has called
//! the project's GKE API counts as one of its principals, and any other token is refused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rotor_apiserver::TokenReview;

/// The tokens that have acted in one project. Shared by the project's members, so a token
/// that acts later is accepted by clusters made earlier. Holds secrets: never printed.
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

/// Installed on the member of a GKE cluster: accepts its project's principals.
pub(crate) struct GkeTokens {
    pub project: String,
    pub principals: Arc<Principals>,
}

impl std::fmt::Debug for GkeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeTokens")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl TokenReview for GkeTokens {
    fn accepts(&self, token: &str) -> bool {
        self.principals.contains(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_projects_principals_only_and_never_prints_them() {
        let principals = Arc::new(Principals::default());
        let review = GkeTokens {
            project: "p".into(),
            principals: principals.clone(),
        };
        assert!(!review.accepts("ya29.someone"));
        principals.add("ya29.someone");
        assert!(review.accepts("ya29.someone"), "a later principal counts");
        assert!(!review.accepts("ya29.forged"));
        assert!(!format!("{review:?}").contains("ya29"));
    }
}
