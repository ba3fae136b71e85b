//! A rollout's timeline over more clusters than one page of it holds, in headless Chromium
//! against a rehearsal (simulated clouds, controllers, no application): a Rollout over
//! [`FLEET`] clusters starts a swap on each, all at once; the timeline's first page draws
//! [`PAGE_ROWS`] rows, and the keyboard brings the row of the cluster whose swap started last
//! into view (the pager's "Last" button, pressed with Enter), its phase the swap's, its link
//! reachable by Tab and its segments named in words.

use crate::common;
use crate::dashboard::{LIMIT, browser, count, in_page, press, screenshot, until_count};

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use futures::FutureExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{ClusterSwap, Rollout};
use rotor_sim::{CloudConfig, SimConfig};
use serde_json::{Value, json};

const ROLLOUT: &str = "wide";
/// Rows on one page of the timeline (gantt.js `PAGE_ROWS`).
const PAGE_ROWS: usize = 200;
/// More clusters than one page of the timeline holds.
const FLEET: usize = PAGE_ROWS + 20;
const ARTICLE: &str = ".rollout[data-name=\"wide\"]";

/// One wave over the whole fleet, every swap at once (none waits for another to end), each
/// baking at its one traffic step long enough to stay on the page while it is looked at.
fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT},
        "spec": {
            "clusterSelector": {},
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "waves": [{"name": "all", "percent": 100}],
            "maxConcurrentSwaps": FLEET,
            "failureBudget": "100%",
            "approval": "Automatic",
            "bakeSecondsBetweenWaves": 0,
            "strategy": {"trafficSteps": [100], "bakeSeconds": 60, "blueRetentionSeconds": 0},
        },
    }))
    .expect("a Rollout")
}

/// The fleet in one process with quick timings and no application (no gate needs its traffic
/// to count here: the timeline is what is tested).
async fn rehearsal() -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(FLEET),
        sim: SimConfig {
            nodes: 1,
            workload_ready_delay: Duration::from_millis(50),
            node_ready_delay: Duration::from_millis(50),
            cloud: CloudConfig {
                create_latency: Duration::from_millis(100),
                delete_latency: Duration::from_millis(50),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(100),
            ..Default::default()
        },
        traffic: TrafficChoice::Sim,
        clock: None,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal");
    r.wait_adopted(4 * LIMIT).await.expect("adopted");
    r
}

/// (start, cluster, swap name, last phase) of a swap that has begun: its first and last
/// `status.history` entries, as the timeline draws them.
fn begun(swap: &ClusterSwap) -> Option<(String, String, String, String)> {
    let status = swap.status.as_ref()?;
    let first = serde_json::to_value(status.history.first()?).ok()?;
    let last = status.history.last()?;
    Some((
        first["time"].as_str()?.to_string(),
        swap.spec.cluster_ref.clone(),
        swap.name_any(),
        format!("{:?}", last.phase),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_reaches_every_cluster_of_a_wide_rollout() {
    let r = rehearsal().await;
    Api::<Rollout>::all(r.client.clone())
        .create(&PostParams::default(), &rollout())
        .await
        .expect("Rollout created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let by_label = ListParams::default().labels(&format!("rotor.dev/rollout={ROLLOUT}"));
    // Every cluster's swap begun: no later swap can sort after the last one picked here.
    let last = common::eventually(8 * LIMIT, "a swap begun on every cluster", || async {
        let list = swaps.list(&by_label).await.ok()?.items;
        let begun: Vec<_> = list.iter().filter_map(begun).collect();
        (begun.len() == FLEET).then(|| begun.into_iter().max().expect("swaps"))
    })
    .await;
    let browser = browser().await;
    let page = Page {
        client: &browser.client,
        base: &r.control_plane_url,
        swaps: &swaps,
        cluster: &last.1,
        swap: &last.2,
    };
    let outcome = std::panic::AssertUnwindSafe(page.play(&r.token))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        screenshot(&browser.client, "timeline-failure").await;
    }
    let _ = browser.client.clone().close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

struct Page<'a> {
    client: &'a Client,
    base: &'a str,
    swaps: &'a Api<ClusterSwap>,
    /// The cluster whose swap began last, and that swap.
    cluster: &'a str,
    swap: &'a str,
}

impl Page<'_> {
    async fn play(&self, token: &str) {
        self.sign_in(token).await;
        self.first_page().await;
        self.last_row().await;
    }

    async fn sign_in(&self, token: &str) {
        let c = self.client;
        c.goto(&format!("{}/ui/#rollouts", self.base))
            .await
            .expect("open the rollouts view");
        let input = c.find(Locator::Css("#token")).await.expect("token field");
        input.send_keys(token).await.expect("type the token");
        press(c, "#signin-submit", "sign in").await;
        press(c, "#nav-rollouts", "open the rollouts view").await;
        until_count(c, "#rollouts:not([hidden])", 1, "the rollouts view").await;
    }

    /// The first page: a full page of rows, the chart naming every swap, the last one not drawn.
    async fn first_page(&self) {
        let c = self.client;
        let rows = format!("{ARTICLE} svg.gantt g[data-cluster]");
        until_count(c, &rows, PAGE_ROWS, "a full first page of the timeline").await;
        let label: Value = in_page(
            c,
            &format!(
                "return document.querySelector('{ARTICLE} svg.gantt').getAttribute('aria-label');"
            ),
        )
        .await;
        let label = label.as_str().unwrap_or_default().to_string();
        assert!(
            label.contains(&format!("{FLEET} swaps")),
            "the chart's text alternative counts every swap: {label}"
        );
        let row = format!("{ARTICLE} svg.gantt g[data-cluster=\"{}\"]", self.cluster);
        assert_eq!(
            count(c, &row).await,
            0,
            "the last row is not on the first page"
        );
    }

    /// The pager's Last, pressed with the keyboard, shows the last row with the swap's phase.
    async fn last_row(&self) {
        let c = self.client;
        let last = format!("{ARTICLE} .gantt-pager button[data-page=\"last\"]");
        let button = c
            .find(Locator::Css(&last))
            .await
            .expect("the timeline's pager offers its last page");
        button
            .send_keys(&Key::Enter.to_string())
            .await
            .expect("Enter on Last");
        let row = format!("{ARTICLE} svg.gantt g[data-cluster=\"{}\"]", self.cluster);
        until_count(c, &row, 1, "the last-started cluster's row").await;
        // The row's last segment is the swap's phase now (it may move on: read both again).
        let (drawn, words) =
            common::eventually(LIMIT, "the row showing the swap's phase", || async {
                let swap = self.swaps.get(self.swap).await.ok()?;
                let phase = begun(&swap)?.3;
                let shown: Value = in_page(
                    c,
                    &format!(
                        "const rects = document.querySelectorAll('{row} rect[data-phase]');\
                     const r = rects[rects.length - 1];\
                     return r ? [r.dataset.phase, r.querySelector('title').textContent] : null;"
                    ),
                )
                .await;
                let (drawn, words): (String, String) = serde_json::from_value(shown).ok()?;
                (drawn == phase).then_some((drawn, words))
            })
            .await;
        assert!(
            words.starts_with(&format!("{}: {drawn} ", self.cluster)),
            "the segment names its cluster and phase in words: {words}"
        );
        let reachable: Value = in_page(
            c,
            &format!(
                "const a = document.querySelector('{row} a');\
                 a.focus(); return [document.activeElement === a, a.tabIndex, \
                 a.getAttribute('href'), a.textContent];"
            ),
        )
        .await;
        assert_eq!(
            reachable,
            json!([true, 0, format!("#swap/{}", self.swap), self.cluster]),
            "the row's link, in the tab order, opens its swap"
        );
        screenshot(c, "timeline-last-page").await;
    }
}
