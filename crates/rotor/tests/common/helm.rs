//! Helm 3 or 4 (`helm3`, `helm4`, which `scripts/install-test-deps.sh` installs) with a home of
//! its own, against one kubeconfig.

use std::path::PathBuf;
use std::process::Command;

/// `helm` (`helm3` or `helm4`) with its own home and the member's kubeconfig.
pub struct Helm {
    binary: &'static str,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    pub fn new(binary: &'static str, kubeconfig: PathBuf) -> Self {
        let home = tempfile::tempdir().expect("helm home");
        Helm {
            binary,
            kubeconfig,
            home,
        }
    }

    /// Runs and requires success; every wait is bounded by `--timeout`.
    pub fn ok(&self, args: &[&str]) -> String {
        let home = self.home.path();
        let out = Command::new(self.binary)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            self.binary,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
