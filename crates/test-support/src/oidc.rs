//! A test OIDC issuer (`oidc_issuer.py` beside this crate): PyCA `cryptography` makes its keys
//! and signs its ID tokens, Python's ssl serves its discovery document and key set over HTTPS
//! — an implementation independent of the JWT crate rotor verifies with. Stopped when dropped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::KillOnDrop;

/// How long the issuer may take to make its keys and listen.
const READY: Duration = Duration::from_secs(30);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/oidc_issuer.py");

/// A Python 3 that has PyCA `cryptography`: `$ROTOR_OIDC_PYTHON`, else the first of moto's venv
/// (scripts/install-test-deps.sh), `python3` on the PATH and the system's that imports it.
/// Panics when none does: the OIDC tests cannot run without one.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("ROTOR_OIDC_PYTHON") {
        return PathBuf::from(path);
    }
    let candidates = ["/opt/rotor-moto/bin/python3", "python3", "/usr/bin/python3"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-c", "import cryptography"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect(
            "no Python 3 with PyCA cryptography for the test OIDC issuer \
             (scripts/install-test-deps.sh installs one; or set ROTOR_OIDC_PYTHON)",
        )
}

/// A running issuer.
pub struct OidcIssuer {
    // Before the directory: the process is gone before its files are removed.
    _child: KillOnDrop,
    /// `https://127.0.0.1:PORT`, exactly its tokens' `iss`.
    pub url: String,
    dir: tempfile::TempDir,
    python: PathBuf,
}

impl OidcIssuer {
    /// Starts an issuer on a free port and waits (bounded) until it says it listens.
    pub fn start() -> anyhow::Result<OidcIssuer> {
        let python = python();
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(&python)
            .args([SCRIPT, "serve"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(READY)
            .map_err(|_| anyhow::anyhow!("the OIDC issuer did not start within {READY:?}"))?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("the OIDC issuer said {line:?}: {e}"))?;
        let url = ready["issuer"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the OIDC issuer said {line:?}"))?
            .to_string();
        Ok(OidcIssuer {
            _child: child,
            url,
            dir,
            python,
        })
    }

    /// The CA its HTTPS certificate chains to (for `--oidc-ca-file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A token the issuer signs: `spec` is `{"claims": {...}, "key": "k1" (published) or
    /// "other" (never published), "alg": "RS256" or "none"}`.
    pub fn mint(&self, spec: &serde_json::Value) -> String {
        let out = Command::new(&self.python)
            .args([
                Path::new(SCRIPT).as_os_str(),
                "mint".as_ref(),
                self.dir.path().as_os_str(),
            ])
            .arg(spec.to_string())
            .output()
            .expect("run the OIDC issuer's mint");
        assert!(
            out.status.success(),
            "mint: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("text")
            .trim()
            .to_string()
    }

    /// How often its key set has been fetched.
    pub fn key_set_fetches(&self) -> u64 {
        std::fs::read_to_string(self.dir.path().join("jwks-fetches"))
            .expect("fetch count")
            .trim()
            .parse()
            .expect("a number")
    }
}
