//! A real moto server (PyPI `moto[server]`) for tests and rehearsals: AWS's EKS, EC2 and Route 53
//! APIs on 127.0.0.1, one process per test, stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::AwsOptions;

/// How long a fresh moto may take to answer (it imports every service's models first).
const READY: Duration = Duration::from_secs(60);

/// Where `scripts/install-test-deps.sh` puts moto when the machine has none.
const VENV_BIN: &str = "/opt/rotor-moto/bin/moto_server";

/// The moto_server binary: `$ROTOR_MOTO`, else `moto_server` on the PATH, else the test
/// script's venv.
pub fn find_moto() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTOR_MOTO") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("moto_server"))
        .chain([PathBuf::from(VENV_BIN)])
        .find(|p| p.is_file())
}

pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start(binary: &std::path::Path) -> anyhow::Result<MotoServer> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(binary).await {
                Ok(m) => return Ok(m),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("moto did not start")))
    }

    async fn start_once(binary: &std::path::Path) -> anyhow::Result<MotoServer> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("moto.log"))?;
        let mut child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + READY;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(MotoServer {
                    child,
                    url,
                    _dir: dir,
                });
            }
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
                anyhow::bail!("moto exited with {status}: {}", log.trim());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("moto did not listen on {url} within {READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Options reaching this moto with its fixed test credentials.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            endpoint_url: Some(self.url.clone()),
            region: Some(crate::DEFAULT_REGION.into()),
            static_credentials: Some(("testing".into(), "testing".into())),
        }
    }
}

/// Options for an AWS that is not there (a port nothing listens on), with a secret key that
/// must never show up in an error: for tests of the unreachable case.
pub fn unreachable() -> AwsOptions {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    AwsOptions {
        endpoint_url: Some(format!("http://{closed}")),
        region: Some(crate::DEFAULT_REGION.into()),
        static_credentials: Some(("testing".into(), "s3cret-key".into())),
    }
}

/// A moto for a test: `None` (the test skips) when moto is not installed and `CI` is unset; a
/// panic when `CI` is set, so a CI machine without moto cannot pass by skipping.
pub async fn for_test() -> Option<MotoServer> {
    match find_moto() {
        Some(bin) => Some(MotoServer::start(&bin).await.expect("start moto")),
        None if std::env::var_os("CI").is_some() => {
            panic!("moto_server not found and CI is set: run scripts/install-test-deps.sh")
        }
        None => {
            eprintln!("skipping: moto_server not found (scripts/install-test-deps.sh installs it)");
            None
        }
    }
}
