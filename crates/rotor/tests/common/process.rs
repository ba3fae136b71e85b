//! `rotor` as a child process: the command, a one-shot run with its output, and a stop by
//! SIGTERM bounded in time (the generic parts are `rotor_test_support`'s).

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

pub use rotor_test_support::{exit_within, sigterm};

use super::kubectl::Running;

/// The `rotor` binary with `args`: stdin and stdout closed, stderr inherited (set it otherwise
/// before spawning).
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rotor"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    c
}

/// Runs `serve` (a `rotor serve` or `rotor controllers` command) and asserts it refuses to
/// start: it exits, with a failure, within 30 s. Its stderr, for the test to look for the
/// reason in.
pub fn serve_refuses(mut serve: Command) -> String {
    serve.stderr(Stdio::piped());
    let mut child = rotor_test_support::KillOnDrop(serve.spawn().expect("rotor serve runs"));
    let status = exit_within(&mut child.0, Duration::from_secs(30), "serve");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr read");
    assert!(!status.success(), "rotor serve started: {stderr}");
    stderr
}

/// `rotor ARGS` run to its end: (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("rotor runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stderr appended to the file `log` (a restarted process adds to its predecessor's).
pub fn append_to(log: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file")
        .into()
}

/// The first line of the file `log` containing `needle`, once a process wrote it (within 30 s).
pub fn wait_for_line(log: &Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never logged: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to `process`, then its exit within `within`: its status.
pub fn stop(process: &mut Running, within: Duration, what: &str) -> ExitStatus {
    sigterm(&process.0);
    exit_within(&mut process.0, within, what)
}
