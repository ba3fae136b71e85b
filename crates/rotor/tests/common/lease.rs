//! The Lease `rotor-controllers` the controllers elect their leader on, as tests read it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// The Lease's holder once it is `want` (or, with `None`, anybody), within `limit`.
pub async fn holder(leases: &Api<Lease>, want: Option<&str>, limit: Duration) -> String {
    let what = format!("the Lease held by {}", want.unwrap_or("anybody"));
    super::eventually(limit, &what, || async {
        let now = leases
            .get_opt(rotor_controllers::leader::LEASE_NAME)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())?;
        want.is_none_or(|w| w == now).then_some(now)
    })
    .await
}
