//! A HAProxy process on a generated config. It lives in this production crate, not in the tests'
//! support crate, because `rotor demo --traffic haproxy` (and `rotor bench rollback`) run one in
//! front of the simulated fleet; the tests use the same launcher.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ConfigOptions, EndpointConfig, HaproxyShifter, LatencyLog, render_config};
use crate::TrafficError;

/// Where the `haproxy` binary is: `$ROTOR_HAPROXY`, else `PATH`, else the sbin directories
/// (Debian installs it in /usr/sbin, which is not on every user's PATH).
pub fn find_haproxy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTOR_HAPROXY") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
}

/// A HAProxy started in the foreground (`-db`) on a generated config in its own temp dir;
/// killed (and reaped) on drop.
#[derive(Debug)]
pub struct HaproxyProcess {
    binary: PathBuf,
    child: Child,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// Where its per-request log lines arrive (see `timing`); `None` when the caller named
    /// another listener (`ConfigOptions::latency_log`), which then reads them.
    latency_log: Option<LatencyLog>,
    // Last field: removed after the child is gone.
    _dir: tempfile::TempDir,
}

impl HaproxyProcess {
    /// [`find_haproxy`] + [`HaproxyProcess::start_with`] with default options.
    pub async fn start(
        endpoints: &[EndpointConfig],
        ready_timeout: Duration,
    ) -> Result<Self, TrafficError> {
        let binary = find_haproxy().ok_or_else(|| TrafficError::Process {
            message: "haproxy not found in $ROTOR_HAPROXY, PATH or /usr/sbin".to_string(),
            source: None,
        })?;
        Self::start_with(&binary, endpoints, &ConfigOptions::default(), ready_timeout).await
    }

    /// Write the config, start `binary -f CFG -db`, and wait until the runtime socket answers
    /// `show info`, at most `ready_timeout`.
    pub async fn start_with(
        binary: &Path,
        endpoints: &[EndpointConfig],
        options: &ConfigOptions,
        ready_timeout: Duration,
    ) -> Result<Self, TrafficError> {
        let process_err = |message: String, source: Option<std::io::Error>| TrafficError::Process {
            message,
            source,
        };
        if let Some(message) = shared_listen(endpoints) {
            return Err(process_err(message, None));
        }
        let dir = tempfile::Builder::new()
            .prefix("rotor-haproxy-")
            .tempdir()
            .map_err(|e| process_err("creating a temp dir".to_string(), Some(e)))?;
        let socket = dir.path().join("admin.sock");
        // sun_path holds 108 bytes including the NUL.
        if socket.as_os_str().len() >= 104 {
            return Err(process_err(
                format!("socket path {socket:?} is too long for a unix socket; set TMPDIR"),
                None,
            ));
        }
        let config = dir.path().join("haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let latency_log = match options.latency_log {
            Some(_) => None,
            None => Some(LatencyLog::bind(([127, 0, 0, 1], 0).into()).await?),
        };
        let options = ConfigOptions {
            latency_log: options
                .latency_log
                .or(latency_log.as_ref().map(LatencyLog::local_addr)),
            ..options.clone()
        };
        std::fs::write(&config, render_config(endpoints, &socket, &options))
            .map_err(|e| process_err(format!("writing {config:?}"), Some(e)))?;
        let child = spawn(binary, &config, &log)?;
        // From here on, Drop kills the child on every error path.
        let mut process = Self {
            binary: binary.to_path_buf(),
            child,
            socket,
            config,
            log,
            latency_log,
            _dir: dir,
        };
        process.wait_ready(ready_timeout).await?;
        Ok(process)
    }

    /// Kills HAProxy and starts it again on the same config, socket and ports, as an
    /// operator's restart would: it comes back knowing only its config file, none of the
    /// backends set through the runtime API.
    pub async fn restart(&mut self, ready_timeout: Duration) -> Result<(), TrafficError> {
        self.stop();
        self.start_again(ready_timeout).await
    }

    /// Kills HAProxy (and reaps it); [`start_again`](Self::start_again) brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts HAProxy again on the same config, socket and ports, after [`stop`](Self::stop).
    pub async fn start_again(&mut self, ready_timeout: Duration) -> Result<(), TrafficError> {
        self.child = spawn(&self.binary, &self.config, &self.log)?;
        self.wait_ready(ready_timeout).await
    }

    async fn wait_ready(&mut self, ready_timeout: Duration) -> Result<(), TrafficError> {
        let deadline = Instant::now() + ready_timeout;
        let probe = self.shifter().with_timeout(Duration::from_millis(250));
        let mut last_error = String::from("socket not created yet");
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(TrafficError::Process {
                        message: format!(
                            "haproxy exited with {status} before it was ready: {}",
                            self.log_tail()
                        ),
                        source: None,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(TrafficError::Process {
                        message: "checking the haproxy child".to_string(),
                        source: Some(e),
                    });
                }
            }
            if self.socket.exists() {
                match probe.raw("haproxy", "show info").await {
                    Ok(info) if info.contains("Name: HAProxy") => return Ok(()),
                    Ok(info) => last_error = format!("unexpected `show info` reply {info:?}"),
                    Err(e) => last_error = e.to_string(),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TrafficError::Process {
                    message: format!(
                        "runtime socket {:?} did not answer `show info` within {ready_timeout:?} ({last_error}); log: {}",
                        self.socket,
                        self.log_tail()
                    ),
                    source: None,
                });
            }
            // Poll interval while HAProxy parses its config and binds (typically < 50 ms).
            tokio::time::sleep((deadline - now).min(Duration::from_millis(10))).await;
        }
    }

    /// A shifter on this process's runtime socket, with the latencies of its logs when this
    /// process reads them.
    pub fn shifter(&self) -> HaproxyShifter {
        let shifter = HaproxyShifter::new(&self.socket);
        match &self.latency_log {
            Some(log) => shifter.with_latencies(log.book()),
            None => shifter,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 2 KiB of HAProxy's stdout/stderr (warnings, alerts).
    pub fn log_tail(&self) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(2048);
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            Err(e) => format!("(log unreadable: {e})"),
        }
    }
}

/// `binary -f CONFIG -db`, its output appended to `log`.
fn spawn(binary: &Path, config: &Path, log: &Path) -> Result<Child, TrafficError> {
    let process_err = |message: String, source| TrafficError::Process {
        message,
        source: Some(source),
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| process_err(format!("opening {log:?}"), e))?;
    let log_file2 = log_file
        .try_clone()
        .map_err(|e| process_err(format!("opening {log:?}"), e))?;
    Command::new(binary)
        .arg("-f")
        .arg(config)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_file2)
        .spawn()
        .map_err(|e| process_err(format!("starting {binary:?}"), e))
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        // Ignore errors: the child may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two endpoints on one listen address, named: HAProxy binds its frontends with SO_REUSEPORT, so
/// it would start and split that port's connections between the two endpoints' backends —
/// each endpoint's traffic, and what its swap's gates read, partly another's.
fn shared_listen(endpoints: &[EndpointConfig]) -> Option<String> {
    let mut seen = std::collections::HashMap::new();
    endpoints.iter().find_map(|e| {
        seen.insert(e.listen(), e.name()).map(|other| {
            format!(
                "endpoints {other} and {} both listen on {}",
                e.name(),
                e.listen()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_endpoints_on_one_port_are_refused_naming_both() {
        let at: std::net::SocketAddr = "127.0.0.1:18080".parse().expect("address");
        let endpoints = [
            EndpointConfig::new("a", "127.0.0.1:18081".parse().expect("address")).expect("a"),
            EndpointConfig::new("b", at).expect("b"),
            EndpointConfig::new("c", at).expect("c"),
        ];
        // Refused before HAProxy is looked for or started.
        let binary = Path::new("/nonexistent/haproxy");
        let options = ConfigOptions::default();
        let refused = HaproxyProcess::start_with(binary, &endpoints, &options, Duration::ZERO)
            .await
            .expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "HAProxy process: endpoints b and c both listen on 127.0.0.1:18080",
            "{refused:?}"
        );
    }
}
