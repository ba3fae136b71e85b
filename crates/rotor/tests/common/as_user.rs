//! kubectl as a user other than the admin: a kubeconfig made from `rotor serve`'s own with other
//! credentials, and what a refusal looks like.

use std::path::Path;
use std::process::Output;

use super::kubectl::Kubectl;
use rotor_test_support::kubeconfig::{self, Credentials};

/// kubectl with a kubeconfig made from `rotor serve`'s own at `admin` with `credentials`.
pub fn kubectl_as(dir: &Path, name: &str, admin: &Path, credentials: Credentials<'_>) -> Kubectl {
    let text = std::fs::read_to_string(admin).expect("admin kubeconfig");
    let path = dir.join(name);
    std::fs::write(&path, kubeconfig::with_credentials(&text, credentials)).expect("write");
    Kubectl::new(path)
}

/// Runs kubectl expecting failure; its stderr.
pub fn refused(k: &Kubectl, args: &[&str]) -> String {
    failed(k.run(args), args)
}

/// kubectl's words for a 401: "Unauthorized" (`get --raw`, older releases) or client-go's
/// "the server has asked for the client to provide credentials".
pub fn unauthorized(stderr: &str) -> bool {
    stderr.contains("Unauthorized")
        || stderr.contains("asked for the client to provide credentials")
}

/// The stderr of a kubectl run that must have failed and printed no data.
pub fn failed(out: Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains('{'),
        "kubectl {args:?} printed data"
    );
    stderr
}
