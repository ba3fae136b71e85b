//! Child processes in tests: killed however the test ends, stopped with SIGTERM, their exit
//! waited for with a bound, their logs read back for failure messages.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed and reaped when dropped, however the test ends.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free when asked (released before returning, so a caller that loses the race
/// for it retries).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sends SIGTERM to `child` (what systemd and the kubelet send to stop a process).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// Waits for `child` to exit, failing the test after `within`; `what` names it in the failure.
pub fn exit_within(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still running {within:?} after it was told to stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of the log file at `path` on one line (`a | b | c`), newest first;
/// empty when it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    log.lines()
        .rev()
        .take(lines)
        .collect::<Vec<_>>()
        .join(" | ")
}
