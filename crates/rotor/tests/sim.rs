//! The simulator as users and later controllers see it: member clusters behind their own
//! kubeconfigs, workloads converging, traffic answering 200/503 by readiness, the simulated cloud
//! creating and deleting clusters over HTTP, and `rotor demo --json`'s report contract.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor_sim::{CloudConfig, Sim, SimConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request over a fresh connection; returns the status code and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn serve(sim: &std::sync::Arc<Sim>) -> SocketAddr {
    sim.serve_loopback().await.expect("serve the simulator")
}

#[tokio::test]
async fn workloads_converge_and_traffic_follows_readiness() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let sim = Sim::new(SimConfig {
        traffic_port: Some(port),
        workload_ready_delay: Duration::from_millis(200),
        nodes: 2,
        ..SimConfig::default()
    });
    let members = sim.start_clusters("t", 2).await.expect("clusters");
    let addr = serve(&sim).await;
    let traffic = members[0].traffic_addr.expect("traffic address");
    assert_ne!(
        traffic.ip(),
        members[1].traffic_addr.expect("second").ip(),
        "each cluster has its own loopback address"
    );

    let client = rotor::client_for(
        &sim.kubeconfig("t-0000", &format!("http://{addr}"))
            .expect("kubeconfig"),
    )
    .await
    .expect("client");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "api"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
        "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}}))
    .expect("deployment");
    let s: Service = serde_json::from_value(json!({"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})).expect("service");
    svcs.create(&PostParams::default(), &s)
        .await
        .expect("service");
    assert_eq!(
        http(traffic, "GET", "/default/api", None).await.0,
        503,
        "no workload yet"
    );
    deps.create(&PostParams::default(), &d)
        .await
        .expect("deployment");
    let ready = common::eventually(LIMIT, "deployment ready", || {
        let deps = deps.clone();
        async move {
            deps.get("api")
                .await
                .ok()
                .and_then(|d| d.status)
                .filter(|s| s.ready_replicas == Some(2))
        }
    })
    .await;
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(http(traffic, "GET", "/default/api", None).await.0, 200);
    assert_eq!(http(traffic, "GET", "/default/missing", None).await.0, 503);
    // Scaling to zero takes the service down once the status catches up.
    deps.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .expect("scale");
    common::eventually(LIMIT, "traffic to fail at zero replicas", || async move {
        (http(traffic, "GET", "/default/api", None).await.0 == 503).then_some(())
    })
    .await;
    // The other member cluster is untouched.
    let other = rotor::client_for(
        &sim.kubeconfig("t-0001", &format!("http://{addr}"))
            .expect("kubeconfig"),
    )
    .await
    .expect("client");
    let other_deps: Api<Deployment> = Api::namespaced(other, "default");
    assert!(other_deps.get_opt("api").await.expect("get").is_none());
}

#[tokio::test]
async fn cloud_creates_and_deletes_clusters_over_http() {
    let sim = Sim::new(SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: 0.0,
        },
        ..SimConfig::default()
    });
    let addr = serve(&sim).await;
    let req = r#"{"name": "green-7", "kubernetesVersion": "1.35", "idempotencyToken": "swap-7"}"#;
    let (code, body) = http(addr, "POST", "/cloud/clusters", Some(req)).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["state"],
        "Creating"
    );
    // A retried create with the same token is the same cluster; another token conflicts.
    assert_eq!(
        http(addr, "POST", "/cloud/clusters", Some(req)).await.0,
        202
    );
    let (code, body) = http(
        addr,
        "POST",
        "/cloud/clusters",
        Some(&req.replace("swap-7", "other")),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("green-7"));
    let (code, body) = http(
        addr,
        "POST",
        "/cloud/clusters",
        Some(&req.replace("1.35", "1.99")),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("kubernetesVersion"), "{body}");
    common::eventually(LIMIT, "cluster running", || async move {
        let (_, body) = http(addr, "GET", "/cloud/clusters/green-7", None).await;
        body.contains("\"Running\"").then_some(())
    })
    .await;
    // The cloud hands out the cluster's credentials; they reach its own Kubernetes API, at the
    // claimed version.
    let (code, body) = http(addr, "GET", "/cloud/clusters/green-7/credentials", None).await;
    assert_eq!(code, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let kubeconfig = rotor_sim::kubeconfig_yaml(
        "green-7",
        &format!("http://{addr}/clusters/green-7"),
        &token,
    );
    let client = rotor::client_for(&kubeconfig).await.expect("client");
    assert_eq!(
        client
            .apiserver_version()
            .await
            .expect("version")
            .git_version,
        "v1.35.0"
    );
    assert_eq!(
        sim.cluster_names(),
        vec!["green-7".to_string()],
        "exactly one cluster for two creates"
    );
    let (code, _) = http(addr, "GET", "/cloud/clusters/nope/credentials", None).await;
    assert_eq!(code, 404);
    let (code, _) = http(addr, "DELETE", "/cloud/clusters/green-7", None).await;
    assert_eq!(code, 202);
    common::eventually(LIMIT, "cluster deleted", || async move {
        (http(addr, "GET", "/cloud/clusters/green-7", None).await.0 == 404).then_some(())
    })
    .await;
    assert!(sim.cluster("green-7").is_none());
    assert_eq!(
        http(addr, "GET", "/clusters/green-7/version", None).await.0,
        404
    );
}

#[test]
fn demo_json_report() {
    let report = demo(&["--clusters", "6", "--inject", "none"]);
    assert_eq!(report["clusters"], 6);
    // The whole fleet rotated blue-green by one staged Rollout, under load, with no failed
    // request: canary, staging, prod-early, prod-rest.
    assert_eq!(report["rollout_phase"], "Succeeded", "{report}");
    assert_eq!(report["waves"], 4, "{report}");
    assert_eq!(report["swaps_succeeded"], 6, "{report}");
    assert_eq!(report["swaps_failed"], 0, "{report}");
    assert_eq!(report["swaps_rolled_back"], 0, "{report}");
    assert_eq!(report["rollbacks"], serde_json::json!([]), "{report}");
    assert_eq!(report["injected_into"], serde_json::Value::Null, "{report}");
    // By default the fleet runs on the three clouds' APIs, through the real providers.
    assert_eq!(
        report["clouds"],
        serde_json::json!(["aws", "azure", "gcp"]),
        "{report}"
    );
    for cloud in ["aws", "azure", "gcp"] {
        assert_eq!(
            report["swaps_by_cloud"][cloud]["succeeded"], 2,
            "{cloud}: {report}"
        );
    }
    assert!(
        report["requests_total"].as_u64().unwrap_or(0) > 1000,
        "{report}"
    );
    assert_eq!(report["requests_failed"], 0, "{report}");
    assert!(
        report["streams_total"].as_u64().unwrap_or(0) >= 6,
        "{report}"
    );
    assert_eq!(report["streams_broken"], 0, "{report}");
    assert!(
        report["rss_peak_mib"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    let wall = report["wall_s"].as_f64().expect("wall_s");
    let critical = report["critical_path_s"].as_f64().expect("critical_path_s");
    assert!(critical > 0.0 && wall > 0.0, "{report}");
    // As rotor serve: SQLite, and the load's default mix of writes and slow requests.
    assert_eq!(report["store"], "sqlite", "{report}");
    assert_eq!(report["load"]["post_percent"], 20, "{report}");
    assert_eq!(report["load"]["slow_percent"], 5, "{report}");
    // The demo's Rollout asks for 3 requests to green per step; how many swaps held for them
    // depends on the load's share (a count, not a promise).
    assert_eq!(report["controllers"]["min_requests"], 3, "{report}");
    assert!(
        report["swaps_held_for_too_few_requests"].is_u64(),
        "{report}"
    );
    assert_eq!(
        report["requests_by_method"]["POST"]["failed"], 0,
        "{report}"
    );
    // The configured bound is a lower bound: the rollout cannot beat it.
    let configured = report["critical_path_configured_s"]
        .as_f64()
        .expect("critical_path_configured_s");
    let ratio = report["wall_over_configured"].as_f64().expect("ratio");
    assert!(configured > 0.0 && ratio >= 1.0, "{report}");
    // Where the swaps' time went: every succeeded swap baked its steps in ShiftingTraffic, and
    // each of the six migrations planned, loaded its checkpoint and applied.
    let shifting = report["phase_mean_s"]["ShiftingTraffic"]
        .as_f64()
        .expect("phase_mean_s.ShiftingTraffic");
    assert!(shifting > 0.0, "{report}");
    for stage in ["plan", "checkpoint", "apply"] {
        assert_eq!(
            report["migration_stages"][stage]["count"], 6,
            "{stage}: {report}"
        );
        let mean = report["migration_stages"][stage]["mean_ms"].as_f64();
        assert!(mean.is_some_and(|m| m > 0.0), "{stage}: {report}");
    }
}

/// The default injected failure (`--inject green-unhealthy`): the canary's green fails its
/// requests at 50 %; that swap rolls back within the failure budget, is retried and succeeds,
/// the rest of the fleet goes on, and no client sees a failure.
#[test]
fn demo_with_an_unhealthy_green_rolls_that_swap_back() {
    let report = demo(&["--clusters", "4", "--traffic", "sim"]);
    assert_eq!(report["injected"], "green-unhealthy", "{report}");
    assert_eq!(report["injected_into"]["fault_set"], true, "{report}");
    assert_eq!(report["swaps_rolled_back"], 1, "{report}");
    assert_eq!(report["swaps_retried"], 1, "{report}");
    // The retried cluster went through on its second green.
    assert_eq!(report["swaps_succeeded"], 4, "{report}");
    assert_eq!(report["rollout_phase"], "Succeeded", "{report}");
    // GETs failed on green are retried on blue; POSTs are not: those green answered 503
    // before the gate tripped fail, all on the injected cluster, all with green's 503.
    assert_eq!(report["requests_by_method"]["GET"]["failed"], 0, "{report}");
    let post = &report["requests_by_method"]["POST"];
    assert!(post["total"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(post["failed"], post["status"], "{report}");
    let injected = report["injected_into"]["swap"].as_str().expect("swap");
    for f in report["failures"].as_array().expect("failures") {
        let what = f["what"].as_str().unwrap_or_default();
        assert!(what.starts_with("POST 503"), "{report}");
        let cluster = f["cluster"].as_str().unwrap_or("?");
        assert!(injected.ends_with(&format!("-{cluster}")), "{report}");
    }
    assert_eq!(report["streams_broken"], 0, "{report}");
    assert!(
        report["requests_total"].as_u64().unwrap_or(0) > 100,
        "{report}"
    );
    // The one rollback is the injected green's, by its error rate; the gate's reaction is
    // timed from the fault to that rollback (not to a later one of the same cluster).
    let rollbacks = report["rollbacks"].as_array().expect("rollbacks");
    assert_eq!(rollbacks.len(), 1, "{report}");
    assert_eq!(rollbacks[0]["reason"], "HealthGateFailed", "{report}");
    let green = report["injected_into"]["green"].as_str().expect("green");
    let message = rollbacks[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(green), "{report}");
    let at = rollbacks[0]["at_s"].as_f64().expect("at_s");
    let fault = report["injected_into"]["at_s"].as_f64().expect("at_s");
    let reaction = report["injected_into"]["gate_reaction_s"].as_f64();
    // All three are rounded to 10 ms.
    assert!(
        reaction.is_some_and(|r| (r - (at - fault)).abs() < 0.02),
        "{report}"
    );
}

/// `--inject hook-deny`: a lifecycle hook after migration, whose receiver (run by the demo,
/// verifying every signature) denies the first call: that swap rolls back before any traffic
/// moved, is retried and succeeds; no request fails and no call was refused.
#[test]
fn demo_with_a_hook_that_denies_rolls_that_swap_back() {
    let report = demo(&[
        "--clusters",
        "3",
        "--traffic",
        "sim",
        "--clouds",
        "sim",
        "--inject",
        "hook-deny",
    ]);
    assert_eq!(report["injected"], "hook-deny", "{report}");
    // Each cluster's swap calls the hook once after migration; the retried one twice.
    assert_eq!(report["hooks_called"], 4, "{report}");
    assert_eq!(report["hooks_denied"], 1, "{report}");
    assert_eq!(report["hooks_refused"], 0, "{report}");
    let denied = &report["hook_denied_swap"];
    assert_eq!(denied["rolled_back"], true, "{report}");
    let cluster = denied["cluster"].as_str().expect("cluster");
    assert!(
        denied["swap"]
            .as_str()
            .expect("swap")
            .ends_with(&format!("-{cluster}")),
        "{report}"
    );
    assert_eq!(report["swaps_rolled_back"], 1, "{report}");
    assert_eq!(report["swaps_retried"], 1, "{report}");
    assert_eq!(report["swaps_succeeded"], 3, "{report}");
    assert_eq!(report["rollout_phase"], "Succeeded", "{report}");
    assert_eq!(report["requests_failed"], 0, "{report}");
    let rollbacks = report["rollbacks"].as_array().expect("rollbacks");
    assert_eq!(rollbacks.len(), 1, "{report}");
    assert_eq!(rollbacks[0]["reason"], "HookDenied", "{report}");
    assert_eq!(rollbacks[0]["cluster"], cluster, "{report}");
}

#[test]
fn demo_exits_non_zero_and_says_why_when_the_rollout_does_not_succeed() {
    // One second is too short for any swap: the rollout is still running at the timeout.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args([
            "demo",
            "--clusters",
            "2",
            "--inject",
            "none",
            "--traffic",
            "sim",
        ])
        .args(["--json", "--timeout-s", "1"])
        .output()
        .expect("demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the rollout did not finish within 1 s"),
        "{stderr}"
    );
    // The report is still printed, with the phase and the conditions that explain it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line")).expect("JSON");
    assert_ne!(report["rollout_phase"], "Succeeded", "{report}");
    assert!(report["rollout_conditions"].is_array(), "{report}");
}

/// Through DNS the demo gates every swap on green's own error ratio in a Prometheus scraping
/// the simulator (DNS counts no requests): the default fault rolls the canary back, the retry
/// succeeds, and the clients' failures (none retried behind DNS) are all the injected
/// cluster's, all green's 503s. A hang, which no series records, is refused up front.
#[test]
fn demo_through_dns_rolls_a_faulty_green_back_by_its_own_series() {
    let report = demo(&["--clusters", "3", "--traffic", "dns"]);
    assert_eq!(report["traffic"], "dns", "{report}");
    assert_eq!(report["metric_gates"], serde_json::json!(["green-errors"]));
    let injected = &report["injected_into"];
    assert_eq!(injected["fault_set"], true, "{report}");
    assert!(
        injected["member_faulted"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(injected["gate_reaction_s"].as_f64().is_some(), "{report}");
    assert_eq!(report["swaps_rolled_back"], 1, "{report}");
    assert_eq!(report["swaps_retried"], 1, "{report}");
    assert_eq!(report["swaps_succeeded"], 3, "{report}");
    assert_eq!(report["rollout_phase"], "Succeeded", "{report}");
    let failed = report["requests_failed"].as_u64().expect("failed");
    let of_cluster = &injected["cluster_failed"];
    let cluster_failed =
        of_cluster["GET"].as_u64().unwrap_or(0) + of_cluster["POST"].as_u64().unwrap_or(0);
    assert_eq!(cluster_failed, failed, "{report}");
    assert_eq!(report["requests_failed_by"]["status"], failed, "{report}");
    for f in report["failures"].as_array().expect("failures") {
        let what = f["what"].as_str().unwrap_or_default();
        assert!(what.contains(" 503"), "{report}");
    }
    assert_eq!(report["streams_broken"], 0, "{report}");
}

#[test]
fn demo_through_dns_refuses_what_it_cannot_gate_or_shift() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["demo", "--clusters", "3", "--traffic", "dns", "--json"])
        .args(["--inject", "green-hangs"])
        .output()
        .expect("demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--inject green-hangs under --traffic dns")
            && stderr.contains("a hung green answers nothing"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The simulator's own provider has no DNS service to shift.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args([
            "demo",
            "--clusters",
            "3",
            "--traffic",
            "dns",
            "--inject",
            "none",
        ])
        .args(["--clouds", "sim", "--json"])
        .output()
        .expect("demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--traffic dns needs"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn demo_stopped_by_sigterm_reports_stops_haproxy_and_exits_non_zero() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["demo", "--clusters", "4", "--traffic", "haproxy"])
        .args(["--inject", "none", "--timeout-s", "300"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo starts");
    let pid = child.id();
    let (lines, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("Rollout fleet-upgrade to"))
    {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("the rollout did not start within 120 s ({e}): {seen:#?}"),
        }
    }
    let haproxy = children_named(pid, "haproxy");
    assert_eq!(haproxy.len(), 1, "the demo runs one HAProxy: {haproxy:?}");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let (done, exited) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("stdout");
        let _ = done.send((child.wait().expect("wait"), out));
    });
    let (status, out) = exited
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo exits within 60 s of SIGTERM");
    seen.extend(rx.try_iter());
    // A handled stop: exit code 1 with the reason, not death by the signal (143).
    assert_eq!(status.code(), Some(1), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("stopped by a signal before the rollout finished")),
        "{seen:#?}"
    );
    // The report follows the stop (its human form: the JSON one silences progress, which
    // this test waits on).
    assert!(
        seen.iter()
            .any(|l| l.contains("stopped by a signal: the load stops, the report follows")),
        "{seen:#?}"
    );
    assert!(out.contains("WAVE"), "{out}");
    for haproxy in haproxy {
        assert!(
            !std::path::Path::new(&format!("/proc/{haproxy}")).exists(),
            "HAProxy {haproxy} outlived the demo"
        );
    }
}

/// The pids of `parent`'s children whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so split after its ')'.
            let (head, rest) = stat.rsplit_once(')').unwrap_or_default();
            let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            comm == name && ppid == Some(parent)
        })
        .collect()
}

#[test]
fn demo_refuses_a_fleet_larger_than_its_open_file_limit_up_front() {
    // `ulimit -n` in sh sets the soft and the hard limit: 1,024 files hold no 100 clusters
    // (1,000 fixed + 170).
    let rotor = env!("CARGO_BIN_EXE_rotor");
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 1024 && exec \"$0\" demo --clusters 100 --json",
            rotor,
        ])
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--clusters 100 needs about 1170 open files")
            && stderr.contains("at most 1024 (hard limit)"),
        "{stderr}"
    );
    // Refused before anything started: no report.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn demo(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("demo")
        .args(args)
        .args(["--json", "--timeout-s", "120"])
        .output()
        .expect("demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).expect("last line is JSON")
}
