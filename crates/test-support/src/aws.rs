//! Suites that run against two independent AWS APIs, moto and `rotor sim`'s AWS front: each
//! test is written once over a [`Backend`] and [`on_both!`](crate::on_both) makes a test of it
//! per backend, so a difference between the two fails one of them by name.

use std::net::SocketAddr;

use rotor_aws::AwsOptions;

/// Which AWS API a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Moto,
    Sim,
}

/// Options that reach the simulator's AWS front (served at `addr`) with test credentials.
pub fn sim_options(addr: SocketAddr) -> AwsOptions {
    AwsOptions {
        endpoint_url: Some(format!("http://{addr}/aws")),
        region: Some(rotor_aws::DEFAULT_REGION.into()),
        static_credentials: Some(("testing".into(), "testing".into())),
    }
}

/// For each `name`, a module `name` with tests `moto` and `sim` calling `name(Backend::…)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn moto() {
                super::$name($crate::aws::Backend::Moto).await
            }
            #[tokio::test]
            async fn sim() {
                super::$name($crate::aws::Backend::Sim).await
            }
        }
    )*};
}
