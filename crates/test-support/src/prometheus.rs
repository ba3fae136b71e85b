//! A real Prometheus per test, scraping every second real targets (the simulator's `/metrics`,
//! the traffic its clusters served: [`for_targets`]) or a small exporter whose values the test
//! sets ([`for_test`]): what a metric gate reads then goes through Prometheus' own scrape,
//! storage, staleness and query engine. Both stop when dropped.
//!
//! Unlike etcd's or moto's, a missing Prometheus fails the test whether or not `CI` is set: a
//! metric gate test that skipped would pass without judging anything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{KillOnDrop, free_port, log_tail};

/// How long a fresh Prometheus may take to be ready.
const READY: Duration = Duration::from_secs(30);

/// The Prometheus binary: `$ROTOR_PROMETHEUS`, else `prometheus` on the PATH or in /usr/bin
/// (Debian's package).
pub fn find_prometheus() -> Option<PathBuf> {
    crate::find_binary("ROTOR_PROMETHEUS", "prometheus", &["/usr/bin"])
}

/// A fresh Prometheus scraping `exporter` every second. Panics, failing the test, when
/// Prometheus is not installed or does not start.
pub async fn for_test(exporter: &Exporter) -> PrometheusProcess {
    for_targets(&[exporter.addr()]).await
}

/// A fresh Prometheus scraping `targets`' `/metrics` every second; panics as [`for_test`].
pub async fn for_targets(targets: &[SocketAddr]) -> PrometheusProcess {
    let Some(binary) = find_prometheus() else {
        panic!(
            "prometheus is not installed (scripts/install-test-deps.sh installs Debian's \
             `prometheus`; or set ROTOR_PROMETHEUS): a metric gate test cannot pass without it"
        );
    };
    PrometheusProcess::start(&binary, targets)
        .await
        .expect("prometheus starts")
}

#[derive(Debug)]
pub struct PrometheusProcess {
    // Before the directory: the process is gone before its data is removed.
    child: KillOnDrop,
    /// `http://127.0.0.1:PORT`, the base of its HTTP API.
    pub url: String,
    dir: tempfile::TempDir,
}

impl PrometheusProcess {
    /// Starts Prometheus scraping `targets` every second and waits until it is ready. The port
    /// is picked free and released first, so a lost race for it is retried with another.
    pub async fn start(binary: &Path, targets: &[SocketAddr]) -> anyhow::Result<Self> {
        crate::start_with_retries(|| Self::start_once(binary, targets)).await
    }

    async fn start_once(binary: &Path, targets: &[SocketAddr]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets))?;
        let port = free_port()?;
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
        let mut process = PrometheusProcess {
            child: KillOnDrop(child),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        process.wait_ready().await?;
        Ok(process)
    }

    /// Until `/-/ready` answers 200, or the process exits, at most [`READY`].
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY;
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                anyhow::bail!("prometheus exited with {status}: {}", self.log_tail());
            }
            if matches!(crate::http::get(&ready).await, Ok((200, _, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("prometheus at {} not ready within {READY:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of its log, newest first (for failure messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("prometheus.log"), 5)
    }

    /// An instant query's result series as (labels, value as written), or Prometheus' error.
    pub async fn query(
        &self,
        promql: &str,
    ) -> anyhow::Result<Vec<(BTreeMap<String, String>, String)>> {
        let url = format!("{}/api/v1/query?query={}", self.url, encode(promql));
        let (status, _, body) = crate::http::get(&url).await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        if status != 200 || answer["status"] != "success" {
            anyhow::bail!("query {promql:?}: HTTP {status}: {answer}");
        }
        let series = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(series
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    labels,
                    s["value"][1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    /// Polls `promql` until its first series' value is `want` (as Prometheus writes it), or
    /// until it answers no series when `want` is None; fails after `limit`.
    pub async fn wait_for(&self, promql: &str, want: Option<&str>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.query(promql).await {
                Ok(series) if series.first().map(|(_, v)| v.as_str()) == want => return,
                Ok(series) => format!("{series:?}"),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "prometheus did not answer {want:?} to {promql:?} within {limit:?}; last {last}; \
                 log: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every target scraped each second (the shortest interval Prometheus keeps to exactly).
fn config_yaml(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: rotor-test\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// Percent-encoding of a query parameter (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `/metrics` endpoint serving the series the test sets, in Prometheus' text format. A
/// series removed is gone at the next scrape (Prometheus marks it stale): its query has no data.
pub struct Exporter {
    addr: SocketAddr,
    series: Arc<Mutex<BTreeMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exporter {
    /// Serves on a free loopback port until dropped.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let series = Arc::new(Mutex::new(BTreeMap::new()));
        let task = tokio::spawn(serve(listener, series.clone()));
        Ok(Exporter { addr, series, task })
    }

    /// Where Prometheus scrapes it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `series` (`name{label="value",…}`) with `value` from the next scrape on.
    pub fn set(&self, series: &str, value: f64) {
        let value = if value.is_nan() {
            "NaN".to_string()
        } else {
            value.to_string()
        };
        self.lock().insert(series.to_string(), value);
    }

    /// Stops serving `series`.
    pub fn remove(&self, series: &str) {
        self.lock().remove(series);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Series = Arc<Mutex<BTreeMap<String, String>>>;

async fn serve(listener: tokio::net::TcpListener, series: Series) {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let series = series.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let body = exposition(&series);
                async move {
                    http::Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn exposition(series: &Series) -> String {
    let series = series.lock().unwrap_or_else(|p| p.into_inner());
    series.iter().map(|(s, v)| format!("{s} {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: a value set is scraped and read back through PromQL, a new value
    /// replaces it, and a removed series has no data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prometheus_reads_what_the_exporter_serves() {
        let exporter = Exporter::start().await.expect("exporter");
        exporter.set(r#"rotor_test_value{cluster="a"}"#, 0.25);
        let prometheus = for_test(&exporter).await;
        let q = r#"rotor_test_value{cluster="a"}"#;
        let limit = Duration::from_secs(20);
        prometheus.wait_for(q, Some("0.25"), limit).await;
        let series = prometheus.query(q).await.expect("query");
        assert_eq!(series[0].0["job"], "rotor-test");
        exporter.set(q, 3.0);
        prometheus.wait_for(q, Some("3"), limit).await;
        exporter.remove(q);
        prometheus.wait_for(q, None, limit).await;
        let e = prometheus.query("sum(").await.expect_err("a bad query");
        assert!(e.to_string().contains("bad_data"), "{e}");
    }
}
