//! The dashboard's operator actions and swap view in a real browser (headless Chromium through
//! chromedriver) against `rotor serve` with controllers and a simulated fleet of three.
//!
//! A viewer (`rotor-viewer`) sees a rollout waiting for approval, its facts and its waves, and
//! a swap's view, but no action anywhere; the same approve sent with the viewer's token is
//! refused with 403 and changes nothing. An operator (`rotor-operator`) opens the approval's
//! confirmation, cancels it with Escape (nothing is written), approves from the dialog, and
//! the rollout's second wave starts. From a cluster's page the operator opens its swap and
//! rolls it back; the rollback appears on the swap's timeline and its traffic chart.

use crate::common;
use crate::dashboard::{
    Browser, LIMIT, browser, count, in_page, press, screenshot, text, until_count,
};

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use futures::FutureExt;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rotor_api::{Cluster, ClusterSwap, Rollout};
use rotor_sim::{CloudConfig, SimConfig};
use serde_json::json;

use common::kubectl::{free_port, start_serve_with};

const ROLLOUT: &str = "manual";
/// The swap rolled back from the page: it bakes long enough at 50 % to be caught there.
const SLOW_SWAP: &str = "slow-swap";

fn binding(user: &str, role: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{user}-{role}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    }
}

/// Two waves of one cluster each, the second waiting for a person; the third cluster is left
/// out (it gets the slow swap). Swaps are quick: two steps of 1 s, no retention.
fn manual_rollout(first: &str, second: &str, third: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT},
        "spec": {
            "clusterSelector": {},
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "waves": [
                {"name": "canary", "selector": {"matchLabels": {"dash-test": first}}},
                {"name": "second", "selector": {"matchLabels": {"dash-test": second}}},
            ],
            "approval": "Manual",
            "bakeSecondsBetweenWaves": 0,
            "skipClusters": [third],
            "failureBudget": 1,
            "strategy": {"trafficSteps": [50, 100], "bakeSeconds": 1, "blueRetentionSeconds": 0},
        },
    }))
    .expect("a Rollout")
}

fn slow_swap(cluster: &str) -> ClusterSwap {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ClusterSwap",
        "metadata": {"name": SLOW_SWAP},
        "spec": {
            "clusterRef": cluster,
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "strategy": {"trafficSteps": [50, 100], "bakeSeconds": 300, "blueRetentionSeconds": 0},
        },
    }))
    .expect("a ClusterSwap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_acts_from_the_page_and_a_viewer_cannot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fleet = rotor_api::sample_fleet(3);
    let names: Vec<String> = fleet.iter().map(|c| c.name_any()).collect();
    for cluster in &mut fleet {
        let name = cluster.name_any();
        cluster.labels_mut().insert("dash-test".into(), name);
    }
    let config = SimConfig {
        nodes: 1,
        // Each cluster serves traffic on its own address: a swap past Verifying needs one.
        traffic_port: Some(free_port()),
        cloud: CloudConfig {
            create_latency: std::time::Duration::from_millis(100),
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    };
    let (_sim, sim_url) = common::fleet::serve_fleet(config, &fleet).await;
    let (viewer, operator) = (rotor_sim::random_token(), rotor_sim::random_token());
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{viewer},vic,vic-uid\n{operator},olga,olga-uid\n"),
    )
    .expect("tokens");
    let (provider, traffic) = (
        format!("sim:{sim_url}"),
        format!("sim:127.0.0.1:{}", free_port()),
    );
    let token_file = tokens.to_str().expect("path");
    let flags = [
        "--provider",
        &provider,
        "--traffic",
        &traffic,
        "--token-auth-file",
        token_file,
    ];
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let kc = dir.path().join("admin.kc");
    let listen = format!("127.0.0.1:{}", free_port());
    let (_serve, _) =
        tokio::task::block_in_place(|| start_serve_with(&store, &listen, &kc, &flags));
    let admin = common::client_from(&kc).await;
    let base = rotor_test_support::kubeconfig::server(&std::fs::read_to_string(&kc).expect("kc"));
    let bindings = Api::<ClusterRoleBinding>::all(admin.clone());
    for (user, role) in [("vic", "rotor-viewer"), ("olga", "rotor-operator")] {
        bindings
            .create(&PostParams::default(), &binding(user, role))
            .await
            .expect("binding");
    }
    let clusters: Api<Cluster> = Api::all(admin.clone());
    for cluster in &fleet {
        let pp = PatchParams::apply("test");
        clusters
            .patch(&cluster.name_any(), &pp, &Patch::Apply(cluster))
            .await
            .expect("Cluster applied");
    }
    let rollout = manual_rollout(&names[0], &names[1], &names[2]);
    Api::<Rollout>::all(admin.clone())
        .create(&PostParams::default(), &rollout)
        .await
        .expect("Rollout created");
    Api::<ClusterSwap>::all(admin.clone())
        .create(&PostParams::default(), &slow_swap(&names[2]))
        .await
        .expect("the slow swap created");

    let browser: Browser = browser().await;
    let run = Actions {
        client: &browser.client,
        base: &base,
        admin: &admin,
        viewer: &viewer,
        operator: &operator,
        slow_cluster: &names[2],
    };
    let outcome = std::panic::AssertUnwindSafe(run.play())
        .catch_unwind()
        .await;
    if outcome.is_err() {
        // What the page showed when the scenario failed, for the person reading the failure.
        screenshot(&browser.client, "actions-failure").await;
        let shown = in_page(
            &browser.client,
            "return document.querySelector('#action-status').innerText + ' | ' + document.querySelector('main').innerText;",
        );
        eprintln!("the page at the failure:\n{}", shown.await);
        for swap in Api::<ClusterSwap>::all(admin.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let st = swap.status.clone().unwrap_or_default();
            let last = st
                .history
                .last()
                .map(|h| format!("{} {}", h.reason, h.message));
            eprintln!(
                "swap {}: rollback {}, {} ({last:?})",
                swap.name_any(),
                swap.spec.rollback,
                st.phase
            );
        }
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(admin.clone(), "default");
        let lp =
            ListParams::default().fields("regarding.kind=ClusterSwap,regarding.name=slow-swap");
        match events.list(&lp).await {
            Ok(l) => eprintln!("{} Events of slow-swap", l.items.len()),
            Err(e) => eprintln!("Events of slow-swap: {e}"),
        }
    }
    let _ = browser.client.clone().close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

struct Actions<'a> {
    client: &'a Client,
    base: &'a str,
    admin: &'a kube::Client,
    viewer: &'a str,
    operator: &'a str,
    slow_cluster: &'a str,
}

const ARTICLE: &str = ".rollout[data-name=\"manual\"]";

impl Actions<'_> {
    async fn play(&self) {
        self.favicon().await;
        self.sign_in(self.viewer, "vic").await;
        self.viewer_sees_no_actions().await;
        self.forged_approve_refused().await;
        self.sign_out().await;
        self.sign_in(self.operator, "olga").await;
        self.operator_approves().await;
        self.operator_rolls_back_a_swap().await;
    }

    /// `/favicon.ico` answers without credentials, so no browser logs a 401 for it.
    async fn favicon(&self) {
        let c = self.client;
        c.goto(&format!("{}/ui/", self.base))
            .await
            .expect("open /ui/");
        until_count(c, "#signin:not([hidden])", 1, "the sign-in form").await;
        let status = in_page(
            c,
            "return [(await fetch('/favicon.ico', {cache: 'no-store'})).status, \
             (await fetch('/ui/favicon.svg', {cache: 'no-store'})).status];",
        )
        .await;
        assert_eq!(status, json!([204, 200]), "the icons without a token");
    }

    async fn sign_in(&self, token: &str, user: &str) {
        let c = self.client;
        let input = c.find(Locator::Css("#token")).await.expect("token field");
        input.clear().await.expect("clear");
        input.send_keys(token).await.expect("type the token");
        press(c, "#signin-submit", "sign in").await;
        common::eventually(LIMIT, "signed in", || async {
            (text(c, "#user").await? == user).then_some(())
        })
        .await;
    }

    async fn sign_out(&self) {
        press(self.client, "#signout", "sign out").await;
        until_count(self.client, "#signin:not([hidden])", 1, "signed out").await;
    }

    /// Waits (bounded) until the rollout waits for a person, its canary's bar full.
    async fn waiting_for_approval(&self) {
        let c = self.client;
        press(c, "#nav-rollouts", "open the rollouts view").await;
        let waiting = format!("{ARTICLE}[data-phase=\"WaitingForApproval\"]");
        common::eventually(4 * LIMIT, "the rollout waiting for approval", || async {
            (count(c, &waiting).await == 1).then_some(())
        })
        .await;
        let approval = text(c, &format!("{ARTICLE} dd[data-fact=\"Approval\"]")).await;
        assert_eq!(
            approval.as_deref(),
            Some("waiting for approval of wave second (#1)"),
            "the approval state in words"
        );
        let canary =
            format!("{ARTICLE} .wave[data-wave=\"canary\"][data-succeeded-percent=\"100\"]");
        assert_eq!(count(c, &canary).await, 1, "the canary's bar full");
        let budget = text(c, &format!("{ARTICLE} dd[data-fact=\"Failure budget\"]")).await;
        assert_eq!(budget.as_deref(), Some("0 used of 1 allowed"));
    }

    /// The viewer's page: the rollout and the slow swap's view, and no action on either.
    async fn viewer_sees_no_actions(&self) {
        let c = self.client;
        self.waiting_for_approval().await;
        assert_eq!(text(c, "#role").await.as_deref(), Some("(read only)"));
        press(
            c,
            &format!("{ARTICLE} .wave[data-wave=\"second\"] summary"),
            "open the wave",
        )
        .await;
        until_count(
            c,
            &format!("{ARTICLE} .cluster-row"),
            1,
            "the wave's cluster",
        )
        .await;
        self.open_slow_swap().await;
        assert_eq!(
            count(c, "button.action").await,
            0,
            "no action on the viewer's swap view"
        );
        press(c, "#nav-rollouts", "back to the rollouts").await;
        until_count(
            c,
            &format!("{ARTICLE} .cluster-row"),
            1,
            "the wave's cluster",
        )
        .await;
        assert_eq!(
            count(c, "button.action").await,
            0,
            "no action on the viewer's rollouts"
        );
    }

    /// The request the Approve button would send, with the viewer's token: 403, nothing written.
    async fn forged_approve_refused(&self) {
        let status = in_page(
            self.client,
            "const r = await fetch('/apis/rotor.dev/v1alpha1/rollouts/manual', { \
               method: 'PATCH', cache: 'no-store', \
               headers: {'Content-Type': 'application/merge-patch+json', \
                 Authorization: 'Bearer ' + sessionStorage.getItem('rotor.token')}, \
               body: JSON.stringify({spec: {approvedThroughWave: 1}})}); \
             return [r.status, (await r.json()).reason];",
        )
        .await;
        assert_eq!(
            status,
            json!([403, "Forbidden"]),
            "a forged approve by the viewer"
        );
        let rollout = Api::<Rollout>::all(self.admin.clone())
            .get(ROLLOUT)
            .await
            .expect("rollout");
        assert_eq!(rollout.spec.approved_through_wave, None, "nothing approved");
    }

    /// Escape cancels the confirmation (nothing written); Confirm approves; wave 2 starts.
    async fn operator_approves(&self) {
        let c = self.client;
        self.waiting_for_approval().await;
        assert_eq!(text(c, "#role").await.as_deref(), Some("(may act)"));
        let approve = format!("{ARTICLE} button[data-action=\"Approve wave second\"]");
        press(c, &approve, "approve").await;
        until_count(c, "#confirm[open]", 1, "the confirmation").await;
        let focused = in_page(c, "return document.activeElement.id;").await;
        assert_eq!(
            focused, "confirm-cancel",
            "the dialog takes the focus, on Cancel"
        );
        let escape = String::from(char::from(Key::Escape));
        c.active_element()
            .await
            .expect("focus")
            .send_keys(&escape)
            .await
            .expect("Escape");
        until_count(c, "#confirm[open]", 0, "the confirmation closed by Escape").await;
        let rollouts = Api::<Rollout>::all(self.admin.clone());
        let unchanged = rollouts.get(ROLLOUT).await.expect("rollout");
        assert_eq!(
            unchanged.spec.approved_through_wave, None,
            "cancelled: nothing sent"
        );

        press(c, &approve, "approve").await;
        until_count(c, "#confirm[open]", 1, "the confirmation").await;
        press(c, "#confirm-ok", "confirm").await;
        common::eventually(LIMIT, "the approval reported", || async {
            let said = text(c, "#action-status[data-state=\"done\"]").await?;
            (said == "rollout/manual approved through wave 1").then_some(())
        })
        .await;
        let approved = rollouts.get(ROLLOUT).await.expect("rollout");
        assert_eq!(approved.spec.approved_through_wave, Some(1));
        // The rollout proceeds: the second wave's swap starts, on the page and in the API.
        let started = format!(
            "{ARTICLE} .wave[data-wave=\"second\"]:is([data-phase=\"InProgress\"], \
             [data-phase=\"Baking\"], [data-phase=\"Succeeded\"])"
        );
        until_count(c, &started, 1, "the second wave started").await;
        let swaps = Api::<ClusterSwap>::all(self.admin.clone())
            .list(&ListParams::default().labels("rotor.dev/rollout=manual"))
            .await
            .expect("swaps");
        assert_eq!(swaps.items.len(), 2, "the second wave's swap created");
        common::eventually(4 * LIMIT, "the second wave's bar full", || async {
            let full =
                format!("{ARTICLE} .wave[data-wave=\"second\"][data-succeeded-percent=\"100\"]");
            (count(c, &full).await == 1).then_some(())
        })
        .await;
        let rows = count(c, &format!("{ARTICLE} svg.gantt g[data-cluster]")).await;
        let segments = count(c, &format!("{ARTICLE} svg.gantt rect.phase")).await;
        assert_eq!(rows, 2, "a row per swap in the rollout's timeline");
        assert!(
            segments >= 2 * 5,
            "each swap's phases as segments: {segments}"
        );
        screenshot(c, "rollouts-operator").await;
    }

    /// From the fleet: the cluster's page lists its swap, which opens the swap view.
    async fn open_slow_swap(&self) {
        let c = self.client;
        press(c, "#nav-fleet", "open the fleet").await;
        let cell = format!(".cell[data-name=\"{}\"]", self.slow_cluster);
        until_count(c, &cell, 1, "the slow swap's cluster").await;
        press(c, &cell, "open the cluster").await;
        let link = format!("#fleet-detail a[href=\"#swap/{SLOW_SWAP}\"]");
        until_count(c, &link, 1, "the cluster's swap listed").await;
        press(c, &link, "open the swap").await;
        until_count(c, "#swap:not([hidden])", 1, "the swap view").await;
        common::eventually(2 * LIMIT, "the slow swap at 50 %", || async {
            let traffic = text(c, "#swap dd[data-fact=\"Traffic\"]").await?;
            (traffic == "green 50 %, blue 50 %").then_some(())
        })
        .await;
    }

    /// Rolls the slow swap back from its view; the rollback is on its timeline and chart.
    async fn operator_rolls_back_a_swap(&self) {
        let c = self.client;
        self.open_slow_swap().await;
        press(c, "button[data-action=\"Roll back swap\"]", "roll back").await;
        until_count(c, "#confirm[open]", 1, "the confirmation").await;
        press(c, "#confirm-ok", "confirm").await;
        for phase in ["RollingBack", "RolledBack"] {
            let entry = format!("#swap .timeline li[data-phase=\"{phase}\"]");
            common::eventually(2 * LIMIT, "the rollback on the timeline", || async {
                (count(c, &entry).await == 1).then_some(())
            })
            .await;
        }
        let entries: Vec<String> = serde_json::from_value(
            in_page(
                c,
                "return [...document.querySelectorAll('#swap .timeline li')]\
                 .map((li) => li.dataset.phase);",
            )
            .await,
        )
        .expect("phases");
        assert_eq!(
            entries.last().map(String::as_str),
            Some("RolledBack"),
            "the timeline ends rolled back: {entries:?}"
        );
        assert!(
            entries.contains(&"ShiftingTraffic".to_string()),
            "{entries:?}"
        );
        let weights = c
            .find(Locator::Css("#swap .weights"))
            .await
            .expect("the weights in words")
            .attr("data-weights")
            .await
            .expect("attr");
        assert_eq!(
            weights.as_deref(),
            Some("0,50,0"),
            "green's weight: 0, 50, back to 0"
        );
        common::eventually(LIMIT, "the rollback's Event", || async {
            let events = text(c, "#swap section.swap-part:last-child table").await?;
            events.contains("RollbackRequested").then_some(())
        })
        .await;
        assert_eq!(count(c, "button[data-action=\"Roll back swap\"]").await, 0);
        let swap = Api::<ClusterSwap>::all(self.admin.clone())
            .get(SLOW_SWAP)
            .await
            .expect("swap");
        assert!(swap.spec.rollback, "the request the page sent");
        screenshot(c, "swap").await;
    }
}
