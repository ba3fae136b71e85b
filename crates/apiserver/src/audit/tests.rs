use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::writer::{FileConfig, LogFile, backups};
use super::*;

fn config(path: &Path, max_bytes: u64, max_backups: usize) -> FileConfig {
    FileConfig {
        path: path.to_path_buf(),
        max_bytes,
        max_backups,
    }
}

fn line(i: usize) -> Vec<u8> {
    format!("{{\"line\":{i:>40}}}\n").into_bytes()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn rotation_keeps_the_newest_backups() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.log");
    let mut log = LogFile::open(config(&path, 99, 2)).expect("open");
    // Each line is 50 bytes: one fits, two do not, so every line after the first rotates.
    for i in 0..10 {
        log.write_line(&line(i)).expect("write");
    }
    log.sync().expect("sync");
    let kept = backups(&path).expect("backups");
    assert_eq!(kept.len(), 2, "{kept:?}");
    let read = |p: &Path| std::fs::read(p).expect("read");
    assert_eq!(read(&kept[0]), line(7), "oldest kept: {kept:?}");
    assert_eq!(read(&kept[1]), line(8));
    assert_eq!(read(&path), line(9));
    for p in kept.iter().chain([&path]) {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
}

#[test]
fn a_line_larger_than_the_limit_gets_its_own_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.log");
    let mut log = LogFile::open(config(&path, 10, 0)).expect("open");
    log.write_line(&line(1)).expect("write");
    log.write_line(&line(2)).expect("write");
    log.sync().expect("sync");
    assert_eq!(std::fs::read(&path).expect("read"), line(2));
    assert_eq!(backups(&path).expect("backups").len(), 1);
}

#[test]
fn no_limit_never_rotates_and_other_files_are_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.log");
    let notes = dir.path().join("audit-notes.log");
    std::fs::write(&notes, "mine").expect("write");
    // An existing file is appended to and made private.
    std::fs::write(&path, line(0)).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut log = LogFile::open(config(&path, 0, 1)).expect("open");
    assert_eq!(mode(&path), 0o600);
    for i in 1..50 {
        log.write_line(&line(i)).expect("write");
    }
    log.sync().expect("sync");
    assert!(backups(&path).expect("backups").is_empty());
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 50);
    let mut log = LogFile::open(config(&path, 100, 1)).expect("reopen");
    log.write_line(&line(50)).expect("write");
    log.write_line(&line(51)).expect("write");
    assert_eq!(backups(&path).expect("backups").len(), 1);
    assert_eq!(std::fs::read_to_string(&notes).expect("notes"), "mine");
}

#[tokio::test]
async fn close_writes_what_was_queued_and_later_events_are_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.log");
    let auditor =
        Auditor::start(Policy::metadata_for_everything(), config(&path, 0, 0)).expect("start");
    assert_eq!(mode(&path), 0o600);
    for i in 0..100 {
        auditor.submit(sample(&format!("id-{i}")));
    }
    auditor.close(Duration::from_secs(10)).await.expect("close");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 100);
    for (i, l) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        assert_eq!(v["auditID"], format!("id-{i}"), "in order");
    }
    assert_eq!(auditor.dropped(), 0);
    auditor.submit(sample("late"));
    // The writer has ended: the event is lost, and counted.
    let (done, _) = oneshot::channel();
    let closed = auditor.queue.send(Message::Close(done)).await;
    assert!(closed.is_err(), "the writer's queue is closed");
    assert_eq!(auditor.dropped(), 1);
    assert!(
        auditor
            .metrics_text()
            .contains("rotor_audit_events_dropped_total 1")
    );
}

fn sample(id: &str) -> Event {
    Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: Level::Metadata,
        audit_id: id.into(),
        stage: Stage::ResponseComplete,
        request_uri: "/api/v1/namespaces".into(),
        verb: "list".into(),
        user: event::User::default(),
        source_ips: vec!["127.0.0.1".into()],
        user_agent: None,
        object_ref: None,
        response_status: None,
        request_object: None,
        response_object: None,
        request_received_timestamp: event::micro_time(chrono::Utc::now()),
        stage_timestamp: event::micro_time(chrono::Utc::now()),
        annotations: Default::default(),
    }
}
