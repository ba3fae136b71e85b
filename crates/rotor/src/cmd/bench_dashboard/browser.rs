//! Headless Chromium through its own chromedriver (WebDriver, with fantoccini), for the bench
//! only: nothing the server runs uses it. Each [`Page`] is its own browser session (its own
//! Chromium process), so two views are measured side by side, each on screen in its window.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// How long chromedriver may take to listen and Chromium to open a session.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A chromedriver process; killed when dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free loopback port; fails naming what is missing.
    pub async fn start() -> anyhow::Result<Self> {
        for tool in ["chromium", "chromedriver"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            anyhow::ensure!(
                found.is_ok_and(|s| s.success()),
                "{tool} is not installed (Debian: chromium and chromium-driver; \
                 scripts/install-test-deps.sh installs them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + START_LIMIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "chromedriver did not listen within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(driver)
    }

    /// A new headless Chromium session with a throwaway profile. rotor's serving certificate is
    /// signed by the rehearsal's own CA, which that profile does not know: certificate errors are
    /// ignored in it (and nowhere else).
    pub async fn page(&self) -> anyhow::Result<Page> {
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
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
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let client = tokio::time::timeout(START_LIMIT, builder.connect(&self.url))
            .await
            .map_err(|_| anyhow::anyhow!("no Chromium session within {START_LIMIT:?}"))??;
        Ok(Page {
            client,
            _profile: profile,
        })
    }
}

/// One browser session on the dashboard.
pub struct Page {
    client: Client,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Opens the dashboard at `base` signed in with `token` (as the sign-in form keeps it: in the
    /// tab's sessionStorage), on view `fragment`.
    pub async fn open(&self, base: &str, token: &str, fragment: &str) -> anyhow::Result<()> {
        self.client.goto(&format!("{base}/ui/")).await?;
        self.client
            .execute(
                "sessionStorage.setItem('rotor.token', arguments[0]);",
                vec![Value::String(token.to_string())],
            )
            .await?;
        self.client.goto(&format!("{base}/ui/#{fragment}")).await?;
        self.client.refresh().await?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    pub async fn run(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, Vec::new()).await?)
    }

    /// Waits (at most `limit`) until `script` returns true.
    pub async fn until(&self, script: &str, limit: Duration, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.run(script).await? == Value::Bool(true) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}
