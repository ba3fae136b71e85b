//! A CronJob on a simulated member, end to end, on a test clock: moving the clock past a start
//! time (and touching the CronJob, as any change does) starts the Job of that minute, whose Pods
//! complete; the CronJob then lists no active Job, records the success, and keeps
//! `successfulJobsHistoryLimit` finished Jobs; an `@every` schedule starts a Job each delay after
//! the CronJob's creation, then after its last start. No wall-clock minute is waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rotor_apiserver::{ApiServer, PatchType, Resource, WriteOptions};
use rotor_sim::{Clock, Sim, SimConfig};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);

/// A clock `offset` seconds ahead of the system's.
fn test_clock(offset: Arc<AtomicI64>) -> Clock {
    Clock::from_fn(move || {
        let now = Timestamp::now().as_second() + offset.load(Ordering::SeqCst);
        Timestamp::from_second(now).expect("a time")
    })
}

/// The Jobs of `ns` once `check` accepts them, polled until LIMIT.
async fn jobs_when(
    server: &ApiServer,
    res: &Resource,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let jobs = server
            .list_where(res, Some("default"), |_| true)
            .await
            .expect("list");
        if check(&jobs) {
            return jobs;
        }
        assert!(Instant::now() < deadline, "timed out; jobs: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn complete(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    })
}

/// Moves the test clock to one second past the next minute and has the CronJob looked at.
async fn next_minute(
    server: &ApiServer,
    res: &Arc<Resource>,
    offset: &AtomicI64,
    tick: i64,
) -> i64 {
    let now = Timestamp::now().as_second() + offset.load(Ordering::SeqCst);
    let minute = now.div_euclid(60) + 1;
    offset.fetch_add(minute * 60 + 1 - now, Ordering::SeqCst);
    touch(server, res, tick).await;
    minute
}

/// Has the CronJob looked at (any change queues it), `tick` making each touch a change.
async fn touch(server: &ApiServer, res: &Arc<Resource>, tick: i64) {
    let touch = json!({"metadata": {"annotations": {"test/tick": tick.to_string()}}});
    let opts = WriteOptions::default();
    server
        .patch(
            res,
            Some("default"),
            "report",
            PatchType::Merge,
            &touch,
            None,
            &opts,
        )
        .await
        .expect("touch");
}

#[tokio::test]
async fn a_cronjob_starts_the_job_of_each_minute_on_a_test_clock() {
    let offset = Arc::new(AtomicI64::new(0));
    let sim = Sim::new(SimConfig {
        nodes: 1,
        workload_ready_delay: Duration::from_millis(20),
        clock: test_clock(offset.clone()),
        ..SimConfig::default()
    });
    let member = sim.add_cluster("m", 34).await.expect("member");
    let server = member.server.clone();
    let cronjobs = server
        .resource("batch", "v1", "cronjobs")
        .expect("cronjobs");
    let jobs = server.resource("batch", "v1", "jobs").expect("jobs");
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 2,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    server
        .create(&cronjobs, Some("default"), cj, &WriteOptions::default())
        .await
        .expect("create");
    let mut names = Vec::new();
    for tick in 0..3 {
        let minute = next_minute(&server, &cronjobs, &offset, tick).await;
        let name = format!("report-{minute}");
        names.push(name.clone());
        jobs_when(&server, &jobs, |js| {
            js.iter()
                .any(|j| j["metadata"]["name"] == name.as_str() && complete(j))
        })
        .await;
    }
    // The third run's success leaves two: the first is deleted as history.
    let left = jobs_when(&server, &jobs, |js| js.len() == 2).await;
    let mut left: Vec<&str> = left
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str())
        .collect();
    left.sort();
    assert_eq!(left, [names[1].as_str(), names[2].as_str()]);
    let deadline = Instant::now() + LIMIT;
    loop {
        let cj = server
            .get(&cronjobs, Some("default"), "report")
            .await
            .expect("get");
        let status = &cj["status"];
        let minute: i64 = names[2]
            .trim_start_matches("report-")
            .parse()
            .expect("minute");
        let scheduled = Timestamp::from_second(minute * 60)
            .expect("time")
            .to_string();
        if status["lastScheduleTime"] == scheduled.as_str()
            && status.get("active").is_none()
            && status["lastSuccessfulTime"].is_string()
        {
            break;
        }
        assert!(Instant::now() < deadline, "cronjob status: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_every_schedule_starts_a_job_each_delay_after_the_last_on_a_test_clock() {
    let offset = Arc::new(AtomicI64::new(0));
    let sim = Sim::new(SimConfig {
        nodes: 1,
        workload_ready_delay: Duration::from_millis(20),
        clock: test_clock(offset.clone()),
        ..SimConfig::default()
    });
    let member = sim.add_cluster("m", 35).await.expect("member");
    let server = member.server.clone();
    let cronjobs = server
        .resource("batch", "v1", "cronjobs")
        .expect("cronjobs");
    let jobs = server.resource("batch", "v1", "jobs").expect("jobs");
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "default"},
        "spec": {"schedule": "@every 2m",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    let written = server
        .create(&cronjobs, Some("default"), cj, &WriteOptions::default())
        .await
        .expect("create");
    let created: Timestamp = written.object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("creationTimestamp");
    for (tick, at) in [(0, 120), (1, 240)] {
        let due = created.as_second() + at;
        offset.store(due + 1 - Timestamp::now().as_second(), Ordering::SeqCst);
        touch(&server, &cronjobs, tick).await;
        let name = format!("report-{}", due.div_euclid(60));
        jobs_when(&server, &jobs, |js| {
            js.iter().any(|j| j["metadata"]["name"] == name.as_str())
        })
        .await;
        let cj = server
            .get(&cronjobs, Some("default"), "report")
            .await
            .expect("get");
        let scheduled = Timestamp::from_second(due).expect("time").to_string();
        assert_eq!(cj["status"]["lastScheduleTime"], scheduled.as_str(), "{cj}");
    }
    let all = jobs_when(&server, &jobs, |js| js.len() == 2).await;
    assert_eq!(all.len(), 2, "one Job per delay: {all:?}");
}
