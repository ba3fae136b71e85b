//! A real etcd per test: one process on 127.0.0.1 with free ports and a data directory of its
//! own, stopped and removed when dropped. Plain HTTP, or TLS with `--client-cert-auth` and
//! certificates made for the test ([`for_test_tls`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::{Ca, Pem};
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

/// As [`for_test`], an etcd serving TLS only to clients with a certificate from its CA
/// (`--client-cert-auth`): its `url` is `https://`, its `tls` the files a client needs.
pub async fn for_test_tls() -> Option<EtcdProcess> {
    let binary = crate::required("etcd", find_etcd())?;
    let started = crate::start_with_retries(|| EtcdProcess::start_once(&binary, true)).await;
    Some(started.expect("etcd starts with TLS"))
}

/// The certificates of an etcd run with TLS and `--client-cert-auth`, and the files a client
/// reads them from (`rotor serve --etcd-cafile … --etcd-certfile … --etcd-keyfile …`).
#[derive(Debug)]
pub struct EtcdTlsFiles {
    /// The CA of etcd's serving certificate and of the clients it accepts.
    pub ca: Ca,
    pub ca_file: PathBuf,
    /// A client certificate `ca` signed.
    pub client: Pem,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl EtcdTlsFiles {
    /// A CA, etcd's serving certificate for 127.0.0.1 and a client certificate, in `dir`.
    fn make(dir: &Path) -> anyhow::Result<(EtcdTlsFiles, Pem)> {
        let ca = Ca::new("etcd-ca")?;
        let serving = ca.serving(&["127.0.0.1", "localhost"])?;
        let client = ca.client("rotor")?;
        let files = EtcdTlsFiles {
            ca_file: write(dir, "ca.crt", &ca.pem.certificate)?,
            client_cert_file: write(dir, "client.crt", &client.certificate)?,
            client_key_file: write(dir, "client.key", &client.key)?,
            ca,
            client,
        };
        Ok((files, serving))
    }

    /// etcd's flags serving TLS with `serving`, asking every client for a certificate.
    fn etcd_args(&self, dir: &Path, serving: &Pem) -> anyhow::Result<Vec<String>> {
        let cert = write(dir, "etcd.crt", &serving.certificate)?;
        let key = write(dir, "etcd.key", &serving.key)?;
        let path = |p: &Path| p.display().to_string();
        Ok(vec![
            "--cert-file".into(),
            path(&cert),
            "--key-file".into(),
            path(&key),
            "--trusted-ca-file".into(),
            path(&self.ca_file),
            "--client-cert-auth".into(),
        ])
    }

    /// The client TLS configuration presenting [`EtcdTlsFiles::client`].
    pub fn options(&self) -> etcd_client::TlsOptions {
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(&self.ca.pem.certificate))
            .identity(etcd_client::Identity::from_pem(
                &self.client.certificate,
                &self.client.key,
            ))
    }
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

#[derive(Debug)]
pub struct EtcdProcess {
    // Before the directory: the process is gone before its data is removed.
    child: KillOnDrop,
    /// `http://127.0.0.1:PORT` (`https://` with TLS), for clients.
    pub url: String,
    /// With TLS: the certificates, and the files holding them.
    pub tls: Option<EtcdTlsFiles>,
    dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers. The ports are picked free and released first, so a
    /// lost race for one is retried with others.
    pub async fn start(binary: &Path) -> anyhow::Result<EtcdProcess> {
        crate::start_with_retries(|| Self::start_once(binary, false)).await
    }

    async fn start_once(binary: &Path, with_tls: bool) -> anyhow::Result<EtcdProcess> {
        let dir = tempfile::tempdir()?;
        let (client, peer, metrics) = (free_port()?, free_port()?, free_port()?);
        let (tls, tls_args) = match with_tls {
            true => {
                let (files, serving) = EtcdTlsFiles::make(dir.path())?;
                let args = files.etcd_args(dir.path(), &serving)?;
                (Some(files), args)
            }
            false => (None, Vec::new()),
        };
        let scheme = if with_tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
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
            .args(&tls_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
        let mut process = EtcdProcess {
            child: KillOnDrop(child),
            url,
            tls,
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

    /// Every key under `prefix`, read with a client of the test's own (TLS when etcd is).
    pub async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let options = self
            .tls
            .as_ref()
            .map(|t| etcd_client::ConnectOptions::new().with_tls(t.options()));
        let mut client = etcd_client::Client::connect([&self.url], options).await?;
        let opts = etcd_client::GetOptions::new()
            .with_prefix()
            .with_keys_only();
        let resp = client.get(prefix, Some(opts)).await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }

    async fn answers(&self) -> bool {
        let probe = async {
            let options = self
                .tls
                .as_ref()
                .map(|t| etcd_client::ConnectOptions::new().with_tls(t.options()));
            let mut client = etcd_client::Client::connect([&self.url], options).await?;
            client.get("/probe", None).await
        };
        matches!(tokio::time::timeout(PROBE, probe).await, Ok(Ok(_)))
    }
}
