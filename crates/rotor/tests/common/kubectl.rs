//! The real kubectl against rotor started as a process (`rotor sim`, `rotor serve`): a child
//! process that is killed however the test ends, and a kubectl with its own cache dir whose
//! every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const LIMIT: Duration = Duration::from_secs(20);

/// A child process killed when the test ends, however it ends.
pub use rotor_test_support::KillOnDrop as Running;

pub fn free_port() -> u16 {
    rotor_test_support::free_port().expect("a free loopback port")
}

/// `rotor ARGS` running, its stderr on the test's.
pub fn rotor(args: &[&str]) -> Running {
    Running(super::process::command(args).spawn().expect("rotor starts"))
}

/// Writes the manifest `text` as `dir/name` for `kubectl apply -f`; its path.
pub fn write_manifest(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.to_str().expect("utf-8 path").to_string()
}

pub fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + LIMIT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rotor sim` with `clusters` member clusters on a free port, kubeconfigs under `dir`; waits for
/// the kubeconfig of the last member and returns kubectl for it. `extra` goes on the command.
pub fn start_sim(dir: &Path, clusters: usize, extra: &[&str]) -> (Running, Kubectl) {
    let kubeconfigs = dir.join("kubeconfigs");
    let (clusters_arg, listen) = (clusters.to_string(), format!("127.0.0.1:{}", free_port()));
    let mut args = vec![
        "sim",
        "--clusters",
        &clusters_arg,
        "--listen",
        &listen,
        "--kubeconfig-dir",
        kubeconfigs.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    let sim = rotor(&args);
    let kc = kubeconfigs.join(format!("member-{:04}.kubeconfig", clusters.max(1) - 1));
    wait_for_file(&kc);
    (sim, Kubectl::new(kc))
}

/// `rotor serve` on `store` listening on `listen`, writing its admin kubeconfig to `kc`; waits
/// for it and returns kubectl for it.
pub fn start_serve(store: &str, listen: &str, kc: &Path) -> (Running, Kubectl) {
    start_serve_with(store, listen, kc, &[])
}

/// [`start_serve`] with `extra` flags.
pub fn start_serve_with(
    store: &str,
    listen: &str,
    kc: &Path,
    extra: &[&str],
) -> (Running, Kubectl) {
    let mut args = vec!["serve", "--store", store, "--listen", listen];
    args.extend(["--kubeconfig-out", kc.to_str().expect("path")]);
    args.extend_from_slice(extra);
    let serve = rotor(&args);
    wait_for_file(kc);
    (serve, Kubectl::new(kc.to_path_buf()))
}

/// `rotor serve` on the SQLite file `db` on a free port, with `extra` flags; see [`start_serve`].
pub fn serve_sqlite(db: &Path, kc: &Path, extra: &[&str]) -> (Running, Kubectl) {
    let (store, listen) = (
        format!("sqlite:{}", db.display()),
        format!("127.0.0.1:{}", free_port()),
    );
    start_serve_with(&store, &listen, kc, extra)
}

/// A rotor.dev Cluster as a user writes it (kubectl applies it to `rotor serve`).
pub const CLUSTER_YAML: &str = r#"apiVersion: rotor.dev/v1alpha1
kind: Cluster
metadata:
  name: prod-sim-a
  labels: {rotor.dev/cloud: sim, rotor.dev/region: us-east-1}
spec:
  provider: sim
  account: demo
  region: us-east-1
  kubernetesVersion: "1.34"
  traffic: {shifter: sim, endpoint: prod-sim-a}
"#;

pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    binary: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: PathBuf) -> Self {
        Self::with_binary(kubeconfig, PathBuf::from("kubectl"))
    }

    /// A kubectl of another binary (a versioned one, see [`versioned`]) with its own cache.
    pub fn with_binary(kubeconfig: PathBuf, binary: PathBuf) -> Self {
        Kubectl {
            kubeconfig,
            cache: tempfile::tempdir().expect("cache dir"),
            binary,
        }
    }

    /// The same server through kubectl 1.`minor` (None, and the test skipped, when it is not
    /// installed; `scripts/install-test-deps.sh` installs `kubectl-1.27` and `kubectl-1.35`).
    pub fn versioned(&self, minor: u32) -> Option<Kubectl> {
        let name = format!("kubectl-1.{minor}");
        let env = format!("KUBECTL_1_{minor}");
        let found = rotor_test_support::find_binary(&env, &name, &["/usr/local/bin"]);
        let binary = rotor_test_support::required(&name, found)?;
        Some(Self::with_binary(self.kubeconfig.clone(), binary))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--request-timeout=15s")
            .args(args);
        c.env("HOME", self.cache.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).expect("kubectl printed JSON")
    }

    /// Retries until `check` accepts the JSON of `args`, bounded by LIMIT.
    pub fn eventually(&self, args: &[&str], what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + LIMIT;
        loop {
            let v = self.json(args);
            if check(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn not_found(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(!out.status.success(), "expected {args:?} to fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "expected NotFound from {args:?}, got: {err}"
        );
    }
}
