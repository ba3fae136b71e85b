//! The Grafana dashboard in `deploy/grafana/rotor.json`: each of its queries names only series
//! rotor exports, and each parses and answers in a real Prometheus scraping rotor's metrics.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_api::{HookAnswer, HookPoint, MetricGateResult, Phase};
use rotor_controllers::metrics::Metrics;
use rotor_providers::CallObserver;
use rotor_test_support::prometheus::{PrometheusProcess, find_prometheus};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/rotor.json"
);

/// Every query of every panel, with the panel's title.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "a dashboard without panels");
    let mut out = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: the datasource is the dashboard's variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            out.push((title.to_string(), expr.to_string()));
        }
    }
    out
}

/// The `rotor_…` names a query reads.
fn names_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rotor_"))
        .map(str::to_string)
        .collect()
}

/// Metrics with a sample in every family (a family without one exports no series), and the
/// fleet gauges over empty caches (they export zeros).
fn exercised() -> Metrics {
    use kube::runtime::reflector;
    let m = Metrics::default();
    m.set_leading(true);
    m.count_swaps(reflector::store().0);
    m.count_clusters(reflector::store().0);
    m.count_rollouts(reflector::store().0);
    m.reconciled::<(), ()>("clusterswap", &Err(()));
    m.swap_transition(Phase::RollingBack, "GateFailed", None);
    m.swap_transition(Phase::RolledBack, "RolledBack", Some(42.0));
    m.observed("eks", "CreateCluster", "ok", 0.2);
    m.observed("eks", "CreateCluster", "throttled", 0.1);
    m.metric_gate_evaluated(MetricGateResult::Pass);
    m.hook_called(HookPoint::AfterMigration, HookAnswer::Allow);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_reads_rotors_series_in_a_real_prometheus() {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard file");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let queries = queries(&dashboard);

    let metrics = Arc::new(exercised());
    let exposition = metrics.encode();
    let exported: BTreeSet<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for (title, expr) in &queries {
        for name in names_in(expr) {
            assert!(
                exported.contains(name.as_str()),
                "{title}: {name} is not a series rotor exports ({exported:?})"
            );
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = metrics.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = served.clone();
            async move { m.encode() }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let binary = find_prometheus().expect(
        "prometheus is not installed (scripts/install-test-deps.sh installs it): the \
         dashboard's queries cannot be checked without it",
    );
    let prometheus = PrometheusProcess::start(&binary, &[addr])
        .await
        .expect("prometheus starts");

    // Rates need two scrapes (one a second): every query answers a series within a bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (title, expr) in &queries {
        loop {
            let series = prometheus
                .query(expr)
                .await
                .unwrap_or_else(|e| panic!("{title}: Prometheus refuses {expr:?}: {e}"));
            if !series.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{title}: {expr:?} answers no series; log: {}",
                prometheus.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    server.abort();
}
