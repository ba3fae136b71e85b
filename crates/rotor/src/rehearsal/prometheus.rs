//! A Prometheus beside the rehearsal, scraping the simulator's `/metrics` (the traffic every
//! simulated cluster answered) every second: what the metric gates of `rotor demo --traffic dns`
//! read, where no proxy counts green's requests. It lives in this production crate because the
//! demo runs one; the tests keep theirs in `rotor-test-support`, which no production crate may
//! depend on.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often Prometheus scrapes, and evaluates: the shortest interval it keeps to exactly.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// Ports tried before giving up: each is picked free and released first, so one may be taken
/// before Prometheus binds it.
const PORT_TRIES: usize = 3;

/// The Prometheus binary: `$ROTOR_PROMETHEUS`, else `prometheus` on the PATH or in /usr/bin
/// (where Debian's package puts it).
pub fn find_prometheus() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTOR_PROMETHEUS") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// A Prometheus on loopback with its data in a temporary directory; killed (and reaped) when
/// dropped, its data removed after it.
#[derive(Debug)]
pub struct PrometheusProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, the base of its HTTP API (what a gate's `prometheus.url` is).
    pub url: String,
    // Last: removed once the process is gone.
    dir: tempfile::TempDir,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusProcess {
    /// Starts `binary` scraping `targets`' `/metrics` every [`SCRAPE_INTERVAL`] and waits until
    /// it is ready, at most `ready_within`.
    pub async fn start(
        binary: &Path,
        targets: &[SocketAddr],
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..PORT_TRIES {
            match Self::start_once(binary, targets, ready_within).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("prometheus did not start")))
    }

    async fn start_once(
        binary: &Path,
        targets: &[SocketAddr],
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rotor-prometheus-")
            .tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
        // From here on, Drop stops it on every error path.
        let mut process = PrometheusProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        process.wait_ready(ready_within).await?;
        Ok(process)
    }

    /// Until a query answers through the gates' own client (Prometheus refuses queries until
    /// it is ready), the process exits, or `limit` passes.
    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let client = rotor_controllers::prometheus::Prometheus::default();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("prometheus exited with {status}: {}", self.log_tail());
            }
            let probe = client.instant_query(&self.url, "vector(1)", Duration::from_secs(1));
            if probe.await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "prometheus at {} not ready within {limit:?}: {}",
                    self.url,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of its log, for an error.
    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.join(" | ")
    }
}

/// Every target scraped (and rules evaluated) each [`SCRAPE_INTERVAL`].
fn config_yaml(targets: &[SocketAddr]) -> String {
    let every = format!("{}s", SCRAPE_INTERVAL.as_secs());
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n  \
         evaluation_interval: {every}\nscrape_configs:\n  - job_name: rotor-demo\n    \
         static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}
