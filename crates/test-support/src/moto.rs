//! A real moto server (PyPI `moto[server]`): AWS's EKS, EC2 and Route 53 APIs on 127.0.0.1, one
//! process per test, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotor_aws::AwsOptions;

use crate::{KillOnDrop, free_port};

/// How long a fresh moto may take to answer (it imports every service's models first).
const READY: Duration = Duration::from_secs(60);

/// Where `scripts/install-test-deps.sh` puts moto when the machine has none.
const VENV_BIN: &str = "/opt/rotor-moto/bin";

/// The moto_server binary: `$ROTOR_MOTO`, else `moto_server` on the PATH, else the test
/// script's venv.
pub fn find_moto() -> Option<PathBuf> {
    crate::find_binary("ROTOR_MOTO", "moto_server", &[VENV_BIN])
}

/// A moto for the running test: `None` (skip) where moto is not installed, a failure in CI (see
/// [`crate::required`]) or when it does not start.
pub async fn for_test() -> Option<MotoServer> {
    let binary = crate::required("moto_server", find_moto())?;
    Some(MotoServer::start(&binary).await.expect("moto starts"))
}

#[derive(Debug)]
pub struct MotoServer {
    // Before the directory: the process is gone before its log is removed.
    _child: KillOnDrop,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers (three tries, as etcd).
    pub async fn start(binary: &Path) -> anyhow::Result<MotoServer> {
        crate::start_with_retries(|| Self::start_once(binary)).await
    }

    async fn start_once(binary: &Path) -> anyhow::Result<MotoServer> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("moto.log"))?;
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut child = KillOnDrop(child);
        let deadline = Instant::now() + READY;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(MotoServer {
                    _child: child,
                    url,
                    _dir: dir,
                });
            }
            if let Some(status) = child.0.try_wait()? {
                let log = std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
                anyhow::bail!("moto exited with {status}: {}", log.trim());
            }
            if Instant::now() > deadline {
                anyhow::bail!("moto did not listen on {url} within {READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Options reaching this moto with its fixed test credentials.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            endpoint_url: Some(self.url.clone()),
            region: Some(rotor_aws::DEFAULT_REGION.into()),
            static_credentials: Some(("testing".into(), "testing".into())),
        }
    }
}

/// Options for an AWS that is not there (a port nothing listens on), with a secret key that
/// must never show up in an error: for tests of the unreachable case.
pub fn unreachable() -> AwsOptions {
    let closed = free_port().expect("a free loopback port");
    AwsOptions {
        endpoint_url: Some(format!("http://127.0.0.1:{closed}")),
        region: Some(rotor_aws::DEFAULT_REGION.into()),
        static_credentials: Some(("testing".into(), "s3cret-key".into())),
    }
}
