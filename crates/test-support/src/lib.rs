//! What rotor's tests share beyond one crate: launchers of the real processes they run against
//! (an etcd, a moto server, a Prometheus and the exporter it scrapes), the one rule for a
//! process that is not installed, and child processes stopped and waited for with bounds.
//!
//! A dev-dependency only: no production crate depends on it. HAProxy's launcher stays in
//! `rotor-traffic` (`haproxy::HaproxyProcess`) because `rotor demo --traffic haproxy` runs one.

use std::future::Future;
use std::path::PathBuf;

pub mod aws;
pub mod certs;
pub mod etcd;
pub mod http;
pub mod kubeconfig;
pub mod members;
pub mod moto;
pub mod oidc;
pub mod process;
pub mod prometheus;

pub use process::{KillOnDrop, exit_within, free_port, log_tail, sigterm};

/// The binary the running test needs, `found` by its finder: `None` (the test is skipped, said
/// on stderr) where it is not installed, and a panic when `CI` is set, so a CI machine without
/// it cannot pass by skipping (`scripts/install-test-deps.sh` installs every one).
pub fn required(tool: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_none() {
        // The test harness names each test's thread after the test.
        let current = std::thread::current();
        let test = current.name().unwrap_or("a test");
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {tool} is not installed and CI is set (scripts/install-test-deps.sh installs it)"
        );
        eprintln!(
            "SKIPPED {test}: {tool} is not installed (scripts/install-test-deps.sh installs it)"
        );
    }
    found
}

/// A binary: the file `$env` names if set (nothing if that is no file), else `name` in the
/// directories of `PATH`, then in `extra_dirs`.
pub fn find_binary(env: &str, name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Up to three tries of `start`: a process on ports picked free and released first may lose the
/// race for one, and another try picks others. The last error if none started.
pub async fn start_with_retries<T, F, Fut>(mut start: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..3 {
        match start().await {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no try")))
}
