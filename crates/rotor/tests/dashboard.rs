//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver)
//! against `rotor serve` over TLS with controllers and a simulated fleet. The page is served
//! without credentials with its content types and Content-Security-Policy, data requests without
//! a token get 401, a viewer's token shows every Cluster as a cell, status changes and a Cluster
//! created afterwards appear without a reload (the watch, also across a restart of the
//! server), the rollouts view draws each wave, and a user without a role sees the API's 403.
//! Screenshots of the views go to `target/ui-screenshots/`. Chromium missing fails the test:
//! `scripts/install-test-deps.sh` installs it.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kubectl::{Running, free_port, start_serve_with};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor_api::{Cluster, Rollout};
use rotor_sim::{CloudConfig, SimConfig};
use serde_json::{Value, json};

/// Clusters in the fleet, about two in each region of the sample clouds; the last two are
/// created while the page watches, one of them while `rotor serve` restarts.
const FLEET: usize = 12;
/// Longest wait for anything the page shows.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// A headless Chromium session through its own chromedriver, both gone when dropped.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Running,
    _profile: tempfile::TempDir,
}

/// Starts chromedriver on a free port and opens a session of headless Chromium with a fresh
/// profile. rotor's serving certificate is signed by its own CA, which this throwaway profile
/// does not know: certificate errors are ignored here, and nowhere else.
pub(crate) async fn browser() -> Browser {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "{tool} is not installed: scripts/install-test-deps.sh installs Debian's chromium \
             and chromium-driver, which the dashboard's tests need"
        );
    }
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Running(driver);
    let address = format!("127.0.0.1:{port}");
    common::eventually(LIMIT, "chromedriver to listen", || async {
        tokio::net::TcpStream::connect(&address).await.ok()
    })
    .await;
    let profile = tempfile::tempdir().expect("profile dir");
    let args = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--ignore-certificate-errors".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({ "args": args }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(capabilities);
    let url = format!("http://{address}");
    let client = tokio::time::timeout(LIMIT, builder.connect(&url))
        .await
        .expect("a Chromium session within the limit")
        .expect("chromedriver opens a Chromium session");
    Browser {
        client,
        _driver: driver,
        _profile: profile,
    }
}

/// Where screenshots go: `target/ui-screenshots/`, beside the test's own temporary files.
fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(&tmp).join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot of the {name} view: {}", path.display());
}

pub(crate) async fn count(client: &Client, css: &str) -> usize {
    client
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |found| found.len())
}

pub(crate) async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Clicks the element `css` finds, to `what` (the test's failure message).
pub(crate) async fn click(client: &Client, css: &str, what: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Clicks what `css` finds, finding it again if a redraw replaced it in between (the views
/// redraw on watch events): bounded by [`LIMIT`].
pub(crate) async fn press(client: &Client, css: &str, what: &str) {
    common::eventually(LIMIT, what, || async {
        client
            .find(Locator::Css(css))
            .await
            .ok()?
            .click()
            .await
            .ok()
    })
    .await;
}

/// Waits (bounded) until `css` matches exactly `n` elements.
pub(crate) async fn until_count(client: &Client, css: &str, n: usize, what: &str) {
    common::eventually(LIMIT, what, || async {
        (count(client, css).await == n).then_some(())
    })
    .await;
}

/// Runs `script` in the page as an async function body (`return` a promise's value).
pub(crate) async fn in_page(client: &Client, script: &str) -> Value {
    let wrapped = format!(
        "const done = arguments[arguments.length - 1];\
         (async () => {{ {script} }})().then(done, (e) => done('error: ' + e));"
    );
    client
        .execute_async(&wrapped, Vec::new())
        .await
        .expect("script runs")
}

/// (cloud, region) of each Cluster: the page's groups.
fn places(clusters: &[Cluster]) -> BTreeSet<(String, String)> {
    clusters
        .iter()
        .map(|c| {
            let cloud = c.labels().get(rotor_api::labels::CLOUD).cloned();
            (cloud.unwrap_or_default(), c.spec.region.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_fleet_and_its_rollouts_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = rotor_api::sample_fleet(FLEET);
    let config = SimConfig {
        nodes: 1,
        cloud: CloudConfig {
            create_latency: Duration::from_millis(100),
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    };
    let (_sim, sim_url) = common::fleet::serve_fleet(config, &fleet).await;

    // `rotor serve` with controllers, and a user `vic` by token, bound to rotor-viewer.
    let viewer_token = rotor_sim::random_token();
    let tokens = dir.path().join("tokens.csv");
    let nobody_token = rotor_sim::random_token();
    let users = format!("{viewer_token},vic,vic-uid\n{nobody_token},nobody,nobody-uid\n");
    std::fs::write(&tokens, users).expect("tokens");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
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
    let store = format!("sqlite:{}", db.display());
    let listen = format!("127.0.0.1:{}", free_port());
    let start = || {
        // The kubeconfig is written once the server is bound: wait for this life's.
        let _ = std::fs::remove_file(&kc);
        tokio::task::block_in_place(|| start_serve_with(&store, &listen, &kc, &flags).0)
    };
    let serve = std::sync::Mutex::new(start());
    let admin = common::client_from(&kc).await;
    let base = rotor_test_support::kubeconfig::server(&std::fs::read_to_string(&kc).expect("kc"));
    let binding = ClusterRoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some("vic-viewer".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "rotor-viewer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: "vic".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("vic bound to rotor-viewer");
    let (first, later) = fleet.split_at(FLEET - 2);
    let clusters: Api<Cluster> = Api::all(admin.clone());
    for cluster in first {
        clusters
            .patch(
                &cluster.name_any(),
                &PatchParams::apply("test"),
                &Patch::Apply(cluster),
            )
            .await
            .expect("Cluster applied");
    }

    let browser = browser().await;
    let run = Scenario {
        client: &browser.client,
        base: &base,
        viewer_token: &viewer_token,
        nobody_token: &nobody_token,
        admin: &admin,
        fleet: &fleet,
        first,
        added: &later[0],
        after_restart: &later[1],
        restart: &|| {
            let mut serve = serve.lock().unwrap_or_else(|p| p.into_inner());
            let status = tokio::task::block_in_place(|| {
                common::process::stop(&mut serve, LIMIT, "rotor serve")
            });
            assert!(status.success(), "rotor serve stops cleanly: {status}");
            *serve = start();
        },
    };
    // The browser is closed however the scenario ends; then its failure, if any, is the test's.
    let outcome = std::panic::AssertUnwindSafe(run.play())
        .catch_unwind()
        .await;
    let _ = browser.client.clone().close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

struct Scenario<'a> {
    client: &'a Client,
    base: &'a str,
    viewer_token: &'a str,
    /// A user no role is bound to.
    nobody_token: &'a str,
    admin: &'a kube::Client,
    fleet: &'a [Cluster],
    /// Applied before the page opens.
    first: &'a [Cluster],
    /// Applied while the page watches.
    added: &'a Cluster,
    /// Applied once `rotor serve` has restarted under the page.
    after_restart: &'a Cluster,
    /// Stops `rotor serve` (SIGTERM) and starts it again on the same store and address.
    restart: &'a dyn Fn(),
}

impl Scenario<'_> {
    async fn play(&self) {
        self.page_without_credentials().await;
        self.sign_in().await;
        self.fleet_live().await;
        self.reconnects().await;
        self.filters().await;
        self.rollouts().await;
        self.forbidden().await;
    }

    /// Signing out forgets the token; a user without a role signs in and sees the API's 403
    /// where the fleet would be.
    async fn forbidden(&self) {
        let c = self.client;
        click(c, "#signout", "sign out").await;
        until_count(c, "#signin:not([hidden])", 1, "the sign-in form again").await;
        let kept = c
            .execute("return sessionStorage.getItem('rotor.token');", Vec::new())
            .await
            .expect("sessionStorage");
        assert_eq!(kept, Value::Null, "the token forgotten");
        self.enter_token(self.nobody_token).await;
        common::eventually(LIMIT, "signed in as nobody", || async {
            (text(c, "#user").await? == "nobody").then_some(())
        })
        .await;
        click(c, "#nav-fleet", "open the fleet view").await;
        common::eventually(LIMIT, "the fleet refused with 403", || async {
            let refusal = text(c, "#fleet-connection[data-state=\"denied\"]").await?;
            (refusal.starts_with("403") && refusal.contains("forbidden")).then_some(())
        })
        .await;
        assert_eq!(count(c, "#fleet-groups .cell").await, 0, "no cell shown");
    }

    /// The page loads without credentials, each file with its type and the policy; a data
    /// request without a token is refused; a wrong token is refused at sign-in.
    async fn page_without_credentials(&self) {
        let c = self.client;
        c.goto(&format!("{}/ui/", self.base))
            .await
            .expect("open /ui/");
        until_count(c, "#signin:not([hidden])", 1, "the sign-in form").await;
        for (file, kind) in [
            ("/ui/", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/fleet.js", "text/javascript"),
            ("/ui/style.css", "text/css"),
        ] {
            let headers = in_page(
                c,
                &format!(
                    "const r = await fetch('{file}', {{cache: 'no-store'}}); \
                     return [r.status, r.headers.get('content-type'), \
                     r.headers.get('content-security-policy'), \
                     r.headers.get('x-content-type-options')];"
                ),
            )
            .await;
            assert_eq!(headers[0], 200, "{file}: {headers}");
            let content_type = headers[1].as_str().unwrap_or_default();
            assert!(content_type.starts_with(kind), "{file}: {headers}");
            let policy = headers[2].as_str().unwrap_or_default();
            assert!(
                policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
                "{file}: {headers}"
            );
            assert_eq!(headers[3], "nosniff", "{file}: {headers}");
        }
        let unauthenticated = in_page(
            c,
            "const r = await fetch('/apis/rotor.dev/v1alpha1/clusters', {cache: 'no-store'}); \
             return r.status;",
        )
        .await;
        assert_eq!(unauthenticated, 401, "a data request without a token");

        self.enter_token("not-a-token-of-this-server").await;
        common::eventually(LIMIT, "the wrong token refused", || async {
            let error = text(c, "#signin-error:not([hidden])").await?;
            error.contains("401").then_some(())
        })
        .await;
    }

    async fn enter_token(&self, token: &str) {
        let c = self.client;
        let input = c.find(Locator::Css("#token")).await.expect("token field");
        input.clear().await.expect("clear");
        input.send_keys(token).await.expect("type the token");
        click(c, "#signin-submit", "sign in").await;
    }

    async fn sign_in(&self) {
        let c = self.client;
        self.enter_token(self.viewer_token).await;
        common::eventually(LIMIT, "signed in as vic", || async {
            (text(c, "#user").await? == "vic").then_some(())
        })
        .await;
        // The token is kept for this tab only.
        let kept = c
            .execute("return sessionStorage.getItem('rotor.token');", Vec::new())
            .await
            .expect("sessionStorage");
        assert_eq!(kept, self.viewer_token);
    }

    /// Every Cluster a cell in its cloud and region's group, healthy once the controllers have
    /// adopted it; a Cluster created now appears without a reload.
    async fn fleet_live(&self) {
        let c = self.client;
        until_count(
            c,
            "#fleet-groups .cell",
            self.first.len(),
            "a cell per Cluster",
        )
        .await;
        common::eventually(LIMIT, "the fleet's watch live", || async {
            (text(c, "#fleet-connection").await? == "live").then_some(())
        })
        .await;
        assert_eq!(
            count(c, "#fleet-groups .group").await,
            places(self.first).len(),
            "a group per cloud and region"
        );
        for cluster in self.first {
            let name = cluster.name_any();
            let cell = c
                .find(Locator::Css(&format!(".cell[data-name=\"{name}\"]")))
                .await
                .unwrap_or_else(|_| panic!("a cell for {name}"));
            assert_eq!(cell.tag_name().await.expect("tag"), "button", "focusable");
            let label = cell
                .attr("aria-label")
                .await
                .expect("attr")
                .unwrap_or_default();
            assert!(
                label.starts_with(&format!("{name}: ")) && label.contains("Kubernetes 1.34"),
                "the cell says in words what its colour says: {label}"
            );
        }
        // Status written by the controllers reaches the page through the watch.
        until_count(
            c,
            "#fleet-groups .cell[data-state=\"healthy\"]",
            self.first.len(),
            "every cell healthy once its Cluster is adopted",
        )
        .await;
        let summary = text(c, "#fleet-summary").await.unwrap_or_default();
        assert_eq!(
            summary,
            format!(
                "{} clusters: {} healthy",
                self.first.len(),
                self.first.len()
            )
        );

        // A Cluster created now appears in the same page (no reload: the marker survives).
        c.execute("window.sameDocument = true;", Vec::new())
            .await
            .expect("marker");
        self.apply(self.added).await;
        let shown = self.first.len() + 1;
        until_count(c, "#fleet-groups .cell", shown, "the new Cluster's cell").await;
        let selector = format!(".cell[data-name=\"{}\"]", self.added.name_any());
        assert_eq!(count(c, &selector).await, 1, "the new Cluster's own cell");
        let same = c
            .execute("return window.sameDocument === true;", Vec::new())
            .await
            .expect("marker");
        assert_eq!(same, true, "the page was not reloaded");

        // Cells take the keyboard's focus, and one opened says where its cluster stands.
        let cell = c.find(Locator::Css(&selector)).await.expect("cell");
        cell.click().await.expect("open the cell");
        let focused = c
            .execute("return document.activeElement.dataset.name;", Vec::new())
            .await
            .expect("focus");
        assert_eq!(focused, self.added.name_any());
        until_count(c, "#fleet-detail:not([hidden])", 1, "the cluster's details").await;
        self.arrow_keys().await;
        until_count(
            c,
            "#fleet-groups .cell[data-state=\"healthy\"]",
            shown,
            "the new Cluster adopted and healthy",
        )
        .await;
        screenshot(c, "fleet").await;
    }

    /// One cell is in the Tab order; Home and the arrow keys move the focus through them all.
    async fn arrow_keys(&self) {
        let c = self.client;
        let key = |k: Key| String::from(char::from(k));
        let active = || async {
            let name = c
                .execute("return document.activeElement.dataset.name;", Vec::new())
                .await
                .expect("focus");
            name.as_str().unwrap_or_default().to_string()
        };
        let names = c
            .execute(
                "return [...document.querySelectorAll('#fleet-groups .cell')]\
                 .map((cell) => cell.dataset.name);",
                Vec::new(),
            )
            .await
            .expect("cells");
        let names: Vec<String> = serde_json::from_value(names).expect("names");
        let focused = c.active_element().await.expect("the focused cell");
        focused.send_keys(&key(Key::Home)).await.expect("Home");
        assert_eq!(active().await, names[0], "Home: the first cell");
        let focused = c.active_element().await.expect("the focused cell");
        focused.send_keys(&key(Key::Right)).await.expect("Right");
        assert_eq!(active().await, names[1], "Right: the next cell");
        let in_tab_order = count(c, "#fleet-groups .cell[tabindex=\"0\"]").await;
        assert_eq!(in_tab_order, 1, "one cell in the Tab order");
    }

    async fn apply(&self, cluster: &Cluster) {
        Api::<Cluster>::all(self.admin.clone())
            .patch(
                &cluster.name_any(),
                &PatchParams::apply("test"),
                &Patch::Apply(cluster),
            )
            .await
            .expect("Cluster applied");
    }

    /// `rotor serve` restarts under the page: its watch ends, and the page watches again (from
    /// its last resourceVersion, or lists again when the server answers 410 Gone), so a
    /// Cluster created after the restart appears too.
    async fn reconnects(&self) {
        let c = self.client;
        (self.restart)();
        // The admin's client reconnects too; the first call may meet the closed connection.
        let clusters = Api::<Cluster>::all(self.admin.clone());
        let (name, pp) = (self.after_restart.name_any(), PatchParams::apply("test"));
        common::eventually(LIMIT, "a Cluster applied after the restart", || async {
            let patch = Patch::Apply(self.after_restart);
            clusters.patch(&name, &pp, &patch).await.ok()
        })
        .await;
        let all = self.fleet.len();
        until_count(
            c,
            "#fleet-groups .cell",
            all,
            "the Cluster created after the restart",
        )
        .await;
        common::eventually(LIMIT, "the fleet's watch live again", || async {
            (text(c, "#fleet-connection").await? == "live").then_some(())
        })
        .await;
    }

    /// A label selector narrows the fleet to one cloud, as the server selects.
    async fn filters(&self) {
        let c = self.client;
        let aws = self
            .fleet
            .iter()
            .filter(|cl| {
                cl.labels()
                    .get(rotor_api::labels::CLOUD)
                    .map(String::as_str)
                    == Some("aws")
            })
            .count();
        let field = c
            .find(Locator::Css("#fleet-selector"))
            .await
            .expect("filter");
        field
            .send_keys("rotor.dev/cloud=aws")
            .await
            .expect("type a selector");
        click(c, "#fleet-filter button[type=submit]", "filter").await;
        until_count(c, "#fleet-groups .cell", aws, "only the aws Clusters").await;
    }

    /// A Rollout appears with a bar per wave of its plan, and its first wave moves on the page.
    async fn rollouts(&self) {
        let c = self.client;
        let rollout = rotor_api::sample_rollout("fleet-upgrade", rotor_api::SAMPLE_TARGET_VERSION);
        let waves = rollout.spec.waves.len();
        Api::<Rollout>::all(self.admin.clone())
            .create(&PostParams::default(), &rollout)
            .await
            .expect("Rollout created");
        click(c, "#nav-rollouts", "open the rollouts view").await;
        until_count(c, "#rollouts:not([hidden])", 1, "the rollouts view").await;
        let wave_css = ".rollout[data-name=\"fleet-upgrade\"] .wave";
        until_count(c, wave_css, waves, "a bar per wave of the plan").await;
        // Read in one script: the view redraws as the rollout's status changes.
        let labels = c
            .execute(
                &format!(
                    "return [...document.querySelectorAll('{wave_css} .bar')]\
                     .map((bar) => bar.getAttribute('aria-label'));"
                ),
                Vec::new(),
            )
            .await
            .expect("the bars' labels");
        let labels: Vec<String> = serde_json::from_value(labels).expect("labels");
        for (wave, label) in rollout.spec.waves.iter().zip(&labels) {
            assert!(
                label.starts_with(&format!("{}: ", wave.name)) && label.contains("cluster"),
                "the bar says its counts in words: {label}"
            );
        }
        // The first wave's bar moves as its swap starts: status reaches the page by the watch.
        let first = &rollout.spec.waves[0].name;
        let moving = format!(
            "{wave_css}[data-wave=\"{first}\"] .bar \
             .seg:is([data-segment=\"running\"], [data-segment=\"succeeded\"])"
        );
        until_count(c, &moving, 1, "the first wave's swap on its bar").await;
        screenshot(c, "rollouts").await;
    }
}
