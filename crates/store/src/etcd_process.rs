//! A real etcd for tests and benchmarks: one process on 127.0.0.1 with free ports and a data
//! directory of its own, stopped and removed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh etcd may take to answer.
const READY: Duration = Duration::from_secs(20);

/// The etcd binary: `$ROTOR_ETCD`, else `etcd` on the PATH or in /usr/bin.
pub fn find_etcd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTOR_ETCD") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

pub struct EtcdProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, for clients.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers. The ports are picked free and released first, so a
    /// lost race for one is retried with others.
    pub async fn start(binary: &std::path::Path) -> anyhow::Result<EtcdProcess> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(binary).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    async fn start_once(binary: &std::path::Path) -> anyhow::Result<EtcdProcess> {
        let dir = tempfile::tempdir()?;
        let (client, peer, metrics) = (free_port()?, free_port()?, free_port()?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(binary)
            .args(["--name", "n", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
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
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = process.child.try_wait()? {
                let log = std::fs::read_to_string(process._dir.path().join("etcd.log"))
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                anyhow::bail!("etcd exited with {status}: {tail}");
            }
            let ready =
                crate::etcd::EtcdStore::connect(std::slice::from_ref(&process.url), "/probe").await;
            if ready.is_ok() {
                return Ok(process);
            }
            if Instant::now() > deadline {
                anyhow::bail!("etcd at {} did not answer within {READY:?}", process.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
