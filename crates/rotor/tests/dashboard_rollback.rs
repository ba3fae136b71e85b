//! A swap rolled back by a fault, as the dashboard shows it, in headless Chromium against a
//! rehearsal (simulated clouds, the embedded router, the sample application under load).
//!
//! The canary's green answers every request with 503 (`TrafficErrors`, injected before it gets
//! traffic, as `rotor demo --inject green-unhealthy` does): its swap's view shows the
//! rollback on the phase timeline (RollingBack, RolledBack), and the error-rate reading that
//! failed — its value over its threshold — in the readings table and as a failed mark on the
//! chart. The operator retries the cluster from the rollouts view; the fresh swap (same name,
//! a new green without the fault) succeeds on the same page, its passing readings listed.

use crate::common;
use crate::dashboard::{LIMIT, browser, count, in_page, press, screenshot, text, until_count};

use std::time::Duration;

use fantoccini::{Client, Locator};
use futures::FutureExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rotor::rehearsal::Rehearsal;
use rotor_api::{ClusterSwap, Phase, Rollout};
use serde_json::{Value, json};

const ROLLOUT: &str = "inject";
const LABEL: &str = "dash-inject";

/// A canary wave of one cluster that tolerates no failure (its rollback pauses the rollout
/// until the cluster is retried), then the other cluster; two quick traffic steps.
fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT},
        "spec": {
            "clusterSelector": {},
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "waves": [
                {"name": "canary", "selector": {"matchLabels": {LABEL: "canary"}}, "failureBudget": 0},
                {"name": "rest", "selector": {"matchLabels": {LABEL: "rest"}}},
            ],
            "failureBudget": "50%",
            "approval": "Automatic",
            "bakeSecondsBetweenWaves": 0,
            "strategy": {"trafficSteps": [20, 100], "bakeSeconds": 1, "blueRetentionSeconds": 0},
        },
    }))
    .expect("a Rollout")
}

async fn rehearsal() -> Rehearsal {
    common::fleet::canary_and_rest(LABEL).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_fault_rolls_back_on_the_swaps_page_and_the_retry_succeeds() {
    let r = rehearsal().await;
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let canary = r.fleet[0].name_any();
    Api::<Rollout>::all(r.client.clone())
        .create(&PostParams::default(), &rollout())
        .await
        .expect("Rollout created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    // Break the canary's green before it gets traffic: its first step's gate fails.
    let (swap, green) = common::eventually(4 * LIMIT, "the canary's green exists", || async {
        let s = swaps.list(&ListParams::default()).await.ok()?.items.pop()?;
        assert_eq!(s.spec.cluster_ref, canary, "the canary's swap comes first");
        let st = s.status.clone()?;
        let green = st.green_instance.clone()?;
        matches!(st.phase, Phase::Migrating | Phase::Verifying).then_some((s.name_any(), green))
    })
    .await;
    assert!(r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors));

    let browser = browser().await;
    let page = Page {
        client: &browser.client,
        base: &r.control_plane_url,
        swap: &swap,
        cluster: &canary,
    };
    let outcome = std::panic::AssertUnwindSafe(page.play(&r.token))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        screenshot(&browser.client, "rollback-failure").await;
        let shown = in_page(
            &browser.client,
            "return document.querySelector('main').innerText;",
        );
        eprintln!("the page at the failure:\n{}", shown.await);
        if let Ok(ro) = Api::<Rollout>::all(r.client.clone()).get(ROLLOUT).await {
            eprintln!("rollout {ROLLOUT}: {}", json!(ro.status));
        }
    }
    let _ = browser.client.clone().close().await;
    load.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

struct Page<'a> {
    client: &'a Client,
    base: &'a str,
    swap: &'a str,
    cluster: &'a str,
}

/// The readings table's rows: (kind, result, value).
async fn readings(client: &Client) -> Vec<(String, String, Option<f64>)> {
    let rows: Value = in_page(
        client,
        "return [...document.querySelectorAll('#swap table.readings tbody tr')]\
         .map((tr) => [tr.dataset.kind, tr.dataset.result, tr.dataset.value ?? null]);",
    )
    .await;
    serde_json::from_value::<Vec<(String, String, Option<String>)>>(rows)
        .expect("rows")
        .into_iter()
        .map(|(k, r, v)| (k, r, v.and_then(|v| v.parse().ok())))
        .collect()
}

impl Page<'_> {
    async fn play(&self, token: &str) {
        self.sign_in(token).await;
        self.rolled_back().await;
        self.retry().await;
        self.retried_succeeds().await;
    }

    async fn sign_in(&self, token: &str) {
        let c = self.client;
        c.goto(&format!("{}/ui/#swap/{}", self.base, self.swap))
            .await
            .expect("open the swap's page");
        let input = c.find(Locator::Css("#token")).await.expect("token field");
        input.send_keys(token).await.expect("type the token");
        press(c, "#signin-submit", "sign in").await;
        until_count(c, "#swap:not([hidden])", 1, "the swap view").await;
    }

    /// The rollback on the timeline; the failing error-rate reading over its threshold.
    async fn rolled_back(&self) {
        let c = self.client;
        for phase in ["RollingBack", "RolledBack"] {
            let entry = format!("#swap .timeline li[data-phase=\"{phase}\"]");
            common::eventually(4 * LIMIT, "the rollback on the timeline", || async {
                (count(c, &entry).await == 1).then_some(())
            })
            .await;
        }
        let rows = readings(c).await;
        let failed: Vec<_> = rows.iter().filter(|(_, r, _)| r == "failed").collect();
        assert_eq!(failed.len(), 1, "one failing reading: {rows:?}");
        let (kind, _, value) = failed[0];
        assert_eq!(kind, "ErrorRate", "{rows:?}");
        let threshold = rotor_api::HealthGates::default().max_error_rate_percent;
        assert!(
            value.is_some_and(|v| v > threshold),
            "the failing reading {value:?} is over its threshold {threshold} %"
        );
        let failing_row = text(c, "#swap table.readings tr[data-result=\"failed\"]")
            .await
            .unwrap_or_default();
        assert!(
            failing_row.contains(&format!("at most {threshold} %")) && failing_row.contains("20 %"),
            "the row names the bound and green's weight: {failing_row}"
        );
        assert_eq!(
            count(c, "#swap svg.traffic rect.reading.failed").await,
            1,
            "the failing reading marked on the chart"
        );
        let label = in_page(
            c,
            "return document.querySelector('#swap svg.traffic rect.reading.failed title').textContent;",
        )
        .await;
        assert!(
            label
                .as_str()
                .is_some_and(|l| l.contains("error rate") && l.contains("FAILED")),
            "the mark's text alternative: {label}"
        );
        screenshot(c, "swap-rolled-back").await;
    }

    /// Retry from the rollouts view: the wave's cluster, its RolledBack swap, Retry, Confirm.
    async fn retry(&self) {
        let c = self.client;
        press(c, "#nav-rollouts", "open the rollouts view").await;
        let wave = format!(".rollout[data-name=\"{ROLLOUT}\"] .wave[data-wave=\"canary\"]");
        press(c, &format!("{wave} summary"), "open the wave").await;
        let retry = format!(
            "{wave} .cluster-row[data-cluster=\"{}\"] button[data-action=\"Retry\"]",
            self.cluster
        );
        press(c, &retry, "retry the cluster").await;
        until_count(c, "#confirm[open]", 1, "the confirmation").await;
        press(c, "#confirm-ok", "confirm").await;
        common::eventually(LIMIT, "the retry reported", || async {
            text(c, "#action-status[data-state=\"done\"]").await
        })
        .await;
    }

    /// The swap of the same name again, from its fresh green to Succeeded, readings passing.
    async fn retried_succeeds(&self) {
        let c = self.client;
        c.goto(&format!("{}/ui/#swap/{}", self.base, self.swap))
            .await
            .expect("back to the swap");
        common::eventually(6 * LIMIT, "the retried swap succeeded", || async {
            let phase = text(c, "#swap dd[data-fact=\"Phase\"]").await?;
            (phase == "Succeeded").then_some(())
        })
        .await;
        let rows = readings(c).await;
        assert!(
            !rows.is_empty() && rows.iter().all(|(_, r, _)| r == "passed"),
            "the retried swap's readings all passed: {rows:?}"
        );
        assert_eq!(
            count(c, "#swap .timeline li[data-phase=\"RolledBack\"]").await,
            0
        );
        assert!(count(c, "#swap svg.traffic circle.reading.passed").await >= 1);
        screenshot(c, "swap-retried").await;
    }
}
