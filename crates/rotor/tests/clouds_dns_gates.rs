//! A faulty green behind each cloud's DNS (Route 53, Cloud DNS, Traffic Manager) is rolled back
//! by a metric gate on its own error ratio, read from a real Prometheus scraping the
//! simulator's series (`rotor demo --traffic dns`'s gates): DNS counts no requests, so only
//! the application's series can tell. The series name each cluster as its cloud does, the
//! instance a gate's `{{green}}` fills in, though the simulator's members are named apart.

use crate::clouds::{active_instances, one_wave_rollout, rehearsal_over_clouds, rolled_out};
use crate::hooks::rollback_of;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rotor::rehearsal::TrafficChoice;
use rotor_api::{
    ClusterSwap, MetricGate, OnInconclusive, Phase, PrometheusSource, Reason, Threshold,
};
use rotor_traffic::load::{Focus, Load, Mix, Pace};

const LIMIT: Duration = Duration::from_secs(120);

/// Green's error ratio over the last 5 s, by the cloud's name for it; at most 1 %, three passes
/// a second apart in each step (the third two seconds in: a fault set as the step begins has
/// been scraped by then).
fn green_errors(prometheus: &str) -> MetricGate {
    MetricGate {
        name: "green-errors".into(),
        query: r#"sum(rate(rotor_sim_traffic_errors_total{cluster="{{green}}"}[5s])) / sum(rate(rotor_sim_traffic_requests_total{cluster="{{green}}"}[5s]))"#.into(),
        threshold: Threshold {
            max: Some(0.01),
            min: None,
        },
        interval_seconds: 1,
        consecutive: 3,
        on_inconclusive: OnInconclusive::Pause,
        prometheus: Some(PrometheusSource {
            url: prometheus.into(),
        }),
    }
}

/// Sets `TrafficErrors` in every green once it carries half its cluster's traffic, until
/// `clusters` greens have it; the greens it broke.
async fn break_greens_at_half(r: &rotor::rehearsal::Rehearsal, clusters: usize) -> Vec<String> {
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let deadline = std::time::Instant::now() + LIMIT;
    let mut broken = BTreeSet::new();
    while broken.len() < clusters {
        assert!(
            std::time::Instant::now() < deadline,
            "only {broken:?} of {clusters} greens reached half within {LIMIT:?}"
        );
        let listed = swaps.list(&ListParams::default()).await.expect("swaps");
        for s in listed.items {
            let st = s.status.unwrap_or_default();
            let half = st.phase == Phase::ShiftingTraffic && st.green_weight_percent >= 50;
            if let (true, Some(green)) = (half, st.green_instance)
                && !broken.contains(&green)
                && let Some(member) = r.sim.member_of_instance(&green)
                && r.sim.set_fault(&member, rotor_sim::Fault::TrafficErrors)
            {
                broken.insert(green);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broken.into_iter().collect()
}

async fn faulty_greens_behind_dns_roll_back() {
    let clusters = 3;
    let r = rehearsal_over_clouds(clusters, TrafficChoice::Dns).await;
    r.wait_adopted(LIMIT).await.expect("adopted");
    r.deploy_app(LIMIT)
        .await
        .expect("the app answers by its names");
    let sim = r
        .sim_url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let prometheus = rotor_test_support::prometheus::for_targets(&[sim]).await;
    let records = r.dns_records().expect("DNS records");
    let mix = Mix {
        post_percent: 20,
        slow_percent: 0,
        streams: 0,
    };
    let load = Load::start_resolving(
        r.app_urls(),
        4,
        rotor_traffic::CLIENT_TIMEOUT,
        mix,
        Pace::default(),
        Focus::default(),
        records.clone(),
    );
    let mut rollout = one_wave_rollout(clusters as u32);
    rollout.spec.failure_budget =
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(clusters as i32);
    rollout.spec.strategy.bake_seconds = 1;
    rollout.spec.strategy.health_gates.min_requests = 0;
    rollout.spec.strategy.health_gates.metric_gates = vec![green_errors(&prometheus.url)];
    let (done, broken) = tokio::join!(rolled_out(&r, rollout), break_greens_at_half(&r, clusters));
    let sent = load.stop().await;
    assert_eq!(done.counts.rolled_back, clusters as u32, "{done:?}");
    // Every swap rolled back by the gate at 50 %, on the series of the green it broke.
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    for s in swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items
    {
        let st = s.status.clone().unwrap_or_default();
        assert_eq!(
            st.phase,
            Phase::RolledBack,
            "{}: {:?}",
            s.name_any(),
            st.history
        );
        let green = st.green_instance.clone().expect("green");
        assert!(broken.contains(&green), "{green} not in {broken:?}");
        let (reason, message) = rollback_of(&st);
        assert_eq!(reason, Reason::MetricGateFailed, "{message}");
        for part in [
            "metric gate green-errors failed at 50 %".to_string(),
            format!(r#"rotor_sim_traffic_errors_total{{cluster="{green}"}}"#),
        ] {
            assert!(message.contains(&part), "{part:?} in {message}");
        }
    }
    // The clusters stay on their blues.
    for (c, active) in r.fleet.iter().zip(active_instances(&r).await) {
        assert_eq!(active, c.name_any());
    }
    // Behind DNS nothing retries green's 503s: clients saw them, as answers, never as broken
    // connections or timeouts.
    assert!(sent.failed > 0, "the faults met no request: {sent:?}");
    assert_eq!(sent.failed, sent.failed_status, "{sent:?}");
    // Fresh resolvers (no cached answers) now reach the blues alone: nothing fails.
    let after = rotor_traffic::load::run_resolving(
        &r.app_urls(),
        40,
        4,
        rotor_traffic::CLIENT_TIMEOUT,
        records,
    )
    .await;
    assert_eq!(after.failed, 0, "{after:?}");
    assert_eq!(after.requests, 40 * clusters as u64);
}

#[test]
fn a_faulty_green_behind_each_clouds_dns_is_rolled_back_by_its_own_series() {
    let runtime = rotor::runtime().expect("runtime");
    let test = runtime.spawn(async {
        tokio::time::timeout(
            Duration::from_secs(240),
            faulty_greens_behind_dns_roll_back(),
        )
        .await
    });
    runtime
        .block_on(test)
        .expect("the test's task")
        .expect("bounded");
}
