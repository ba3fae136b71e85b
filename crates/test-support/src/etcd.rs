//! A real etcd per test: one process on 127.0.0.1 with free ports and a data directory of its
//! own, stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{KillOnDrop, free_port, log_tail};

/// How long a fresh etcd may take to answer.
const READY: Duration = Duration::from_secs(20);

/// Bound on one readiness probe (connect and a read).
const PROBE: Duration = Duration::from_secs(2);

/// The etcd binary: `$ROTOR_ETCD`, else `etcd` on the PATH or in /usr/bin.
pub fn find_etcd() -> Option<PathBuf> {
    crate::find_binary("ROTOR_ETCD", "etcd", &["/usr/bin"])
}

/// A fresh etcd for the running test: `None` (skip) where etcd is not installed, a failure in CI (see
/// [`crate::required`]) or when it does not start.
pub async fn for_test() -> Option<EtcdProcess> {
    let binary = crate::required("etcd", find_etcd())?;
    Some(EtcdProcess::start(&binary).await.expect("etcd starts"))
}

#[derive(Debug)]
pub struct EtcdProcess {
    // Before the directory: the process is gone before its data is removed.
    child: KillOnDrop,
    /// `http://127.0.0.1:PORT`, for clients.
    pub url: String,
    dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers. The ports are picked free and released first, so a
    /// lost race for one is retried with others.
    pub async fn start(binary: &Path) -> anyhow::Result<EtcdProcess> {
        crate::start_with_retries(|| Self::start_once(binary)).await
    }

    async fn start_once(binary: &Path) -> anyhow::Result<EtcdProcess> {
        let dir = tempfile::tempdir()?;
        let (client, peer, metrics) = (free_port()?, free_port()?, free_port()?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(binary)
            .args(["--name", "n", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("n={peer_url}")])
            .args([
                "--listen-metrics-urls",
                &format!("http://127.0.0.1:{metrics}"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
        let mut process = EtcdProcess {
            child: KillOnDrop(child),
            url,
            dir,
        };
        process.wait_ready().await?;
        Ok(process)
    }

    /// Until etcd serves a read (not only accepts TCP), or it exits, at most [`READY`].
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                let tail = log_tail(&self.dir.path().join("etcd.log"), 5);
                anyhow::bail!("etcd exited with {status}: {tail}");
            }
            if self.answers().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("etcd at {} did not answer within {READY:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn answers(&self) -> bool {
        let probe = async {
            let mut client = etcd_client::Client::connect([&self.url], None).await?;
            client.get("/probe", None).await
        };
        matches!(tokio::time::timeout(PROBE, probe).await, Ok(Ok(_)))
    }
}
