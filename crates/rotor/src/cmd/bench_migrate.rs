//! `rotor bench migrate`: objects per second the migration engine moves between two simulated
//! clusters over HTTP, against `kubectl get -o json | (strip) | kubectl apply -f -` per namespace
//! (when kubectl is on PATH) moving the same objects into a third cluster. The strip is what an
//! operator's `jq` would do: what the source assigned (resourceVersion, uid, creation time,
//! status) goes, since a create carrying a resourceVersion is refused, as upstream's is.
//!
//! Blue is filled in-process (the fill is not measured); the clock covers the whole migration:
//! discovery, listing, sanitizing, ordering and applying. Readiness is timed apart (`ready_s`):
//! kubectl does not wait for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::round;
use clap::Args;
use rotor_apiserver::WriteOptions;
use rotor_migration::{MemoryCheckpoint, MigrationOptions};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Objects migrated, namespaces included (ConfigMaps and Secrets, and Deployments as
    /// `--deployment-every` says).
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Every Nth object is a Deployment (0: none). Each makes the simulated clusters' workload
    /// controllers, in this process, create a ReplicaSet and two Pods: CPU the engine and the
    /// API servers share.
    #[arg(long, default_value_t = 20)]
    pub deployment_every: usize,
    /// Namespaces the objects are spread over.
    #[arg(long, default_value_t = 20)]
    pub namespaces: usize,
    /// Requests in flight within a stage.
    #[arg(long, default_value_t = MigrationOptions::default().concurrency)]
    pub concurrency: usize,
    /// Client-side rate limit in requests per second (0: none).
    #[arg(long, default_value_t = MigrationOptions::default().qps)]
    pub qps: f64,
    /// Leave out the kubectl comparison even when kubectl is on PATH.
    #[arg(long)]
    pub no_kubectl: bool,
    #[arg(long)]
    pub json: bool,
}

const BLUE: &str = "blue";
const GREEN: &str = "green";
const KUBECTL_GREEN: &str = "green-kubectl";

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let namespaces = args.namespaces.clamp(1, args.objects.max(1));
    let kubectl = (!args.no_kubectl).then(find_kubectl).flatten();
    // kubectl sends no token over plain HTTP: it gets in as anonymous on loopback.
    let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
        anonymous: kubectl.is_some(),
        ..rotor_sim::SimConfig::default()
    });
    let blue = sim.add_cluster(BLUE, 35).await?;
    sim.add_cluster(GREEN, 35).await?;
    if kubectl.is_some() {
        sim.add_cluster(KUBECTL_GREEN, 35).await?;
    }
    let fill = Instant::now();
    let names = fill_blue(
        &blue.server,
        args.objects,
        namespaces,
        args.deployment_every,
    )
    .await?;
    settle(&blue.server).await?;
    if !args.json {
        eprintln!(
            "filled blue with {} objects in {:.2}s",
            args.objects,
            fill.elapsed().as_secs_f64()
        );
    }

    let base = format!("http://{}", sim.serve_loopback().await?);
    let kubeconfig = |name: &str| {
        sim.kubeconfig(name, &base)
            .ok_or_else(|| anyhow::anyhow!("no kubeconfig for {name}"))
    };
    let blue_client = client(&kubeconfig(BLUE)?).await?;
    let green_client = client(&kubeconfig(GREEN)?).await?;

    let options = MigrationOptions {
        concurrency: args.concurrency.max(1),
        qps: args.qps,
        ..MigrationOptions::default()
    };
    let started = Instant::now();
    let plan = rotor_migration::plan(&blue_client, &options).await?;
    let plan_s = started.elapsed().as_secs_f64();
    let report =
        rotor_migration::apply(&green_client, &plan, &options, &MemoryCheckpoint::new()).await;
    let wall_s = started.elapsed().as_secs_f64();
    if !report.is_complete() {
        let first: Vec<String> = report
            .errors
            .iter()
            .take(5)
            .map(|e| e.to_string())
            .collect();
        anyhow::bail!(
            "migration incomplete: {} of {} applied, {} errors: {}",
            report.applied,
            report.total,
            report.errors.len(),
            first.join("; ")
        );
    }
    if report.total != args.objects {
        anyhow::bail!("planned {} objects, created {}", report.total, args.objects);
    }
    let ready = Instant::now();
    let readiness =
        rotor_migration::wait_ready(&green_client, &plan, Duration::from_secs(120)).await?;
    let ready_s = ready.elapsed().as_secs_f64();
    if !args.json {
        eprint!("{plan}");
        eprintln!(
            "migrated {} objects in {wall_s:.2}s (plan {plan_s:.2}s), {} workloads ready {ready_s:.2}s later",
            report.total, readiness.total
        );
    }

    let objects_per_s = report.total as f64 / wall_s;
    let mut out = json!({
        "objects": report.total,
        "namespaces": namespaces,
        "deployment_every": args.deployment_every,
        "concurrency": options.concurrency,
        "qps_limit": options.qps,
        "plan_s": round(plan_s, 2),
        "wall_s": round(wall_s, 2),
        "objects_per_s": objects_per_s.round(),
        "retries": report.retries,
        "ready_s": round(ready_s, 2),
    });
    if let Some(kubectl) = kubectl {
        let dir = tempfile::tempdir()?;
        sim.write_kubeconfigs(dir.path(), &base)?;
        let from = dir.path().join(format!("{BLUE}.kubeconfig"));
        let to = dir.path().join(format!("{KUBECTL_GREEN}.kubeconfig"));
        let t = Instant::now();
        tokio::task::spawn_blocking(move || kubectl_copy(&kubectl, &from, &to, &names)).await??;
        let kubectl_s = t.elapsed().as_secs_f64();
        let copied = count_objects(&sim, KUBECTL_GREEN).await?;
        if copied < report.total {
            anyhow::bail!(
                "kubectl moved {copied} of {} objects: the comparison is void",
                report.total
            );
        }
        if !args.json {
            eprintln!("kubectl moved the same objects in {kubectl_s:.2}s");
        }
        out["kubectl_s"] = json!(round(kubectl_s, 2));
        out["kubectl_objects_per_s"] = json!((report.total as f64 / kubectl_s).round());
        out["speedup"] = json!(round(kubectl_s / wall_s, 2));
    }
    println!("{out}");
    Ok(())
}

/// A kube client bounded as the swap controller's member clients are: the engine retries.
async fn client(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    let calls = rotor_api::client::Calls::Bounded(std::time::Duration::from_secs(10));
    Ok(rotor_api::client::client(kubeconfig, calls).await?)
}

fn find_kubectl() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// Creates `objects` objects in blue, namespaces included: every `deployment_every`th a
/// Deployment, the rest alternately ConfigMaps and Secrets. Returns the namespaces.
async fn fill_blue(
    server: &rotor_apiserver::ApiServer,
    objects: usize,
    namespaces: usize,
    deployment_every: usize,
) -> anyhow::Result<Vec<String>> {
    let opts = WriteOptions {
        field_manager: "kubectl".into(),
        ..WriteOptions::default()
    };
    let ns_res = server.resource("", "v1", "namespaces")?;
    let cm = server.resource("", "v1", "configmaps")?;
    let secret = server.resource("", "v1", "secrets")?;
    let deploy = server.resource("apps", "v1", "deployments")?;
    let names: Vec<String> = (0..namespaces).map(|i| format!("app-{i:02}")).collect();
    for ns in &names {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": "bench"}}});
        server
            .create(&ns_res, None, obj, &opts)
            .await
            .map_err(|e| anyhow::anyhow!("namespace {ns}: {e}"))?;
    }
    for i in 0..objects.saturating_sub(namespaces) {
        let ns = &names[i % namespaces];
        let name = format!("obj-{i:06}");
        let labels = json!({"app": format!("svc-{}", i % 50), "tier": "backend"});
        let (res, obj): (_, Value) = if deployment_every > 0 && i % deployment_every == 0 {
            (
                &deploy,
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                            "name": "main", "image": "registry.example/app:1.0",
                            "ports": [{"containerPort": 8080}],
                            "envFrom": [{"configMapRef": {"name": format!("obj-{:06}", i + 2)}}]}]}}}}),
            )
        } else if i % 2 == 1 {
            (
                &secret,
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "type": "Opaque", "stringData": {"password": format!("secret-{i}"), "user": "app"}}),
            )
        } else {
            (
                &cm,
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": ns, "labels": labels,
                        "annotations": {"owner": "team-bench"}},
                    "data": {"LOG_LEVEL": "info", "FEATURES": "a,b,c", "index": i.to_string()}}),
            )
        };
        server
            .create(res, Some(ns), obj, &opts)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    Ok(names)
}

/// Waits until blue's simulated controllers have reported every Deployment available: blue is
/// at rest when a real migration starts, and their status writes would otherwise share the
/// measured time.
async fn settle(server: &rotor_apiserver::ApiServer) -> anyhow::Result<()> {
    let deploy = server.resource("apps", "v1", "deployments")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = server
            .list(&deploy, None, &Default::default())
            .await
            .map_err(|e| anyhow::anyhow!("listing deployments: {e}"))?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let pending = items
            .iter()
            .filter(|d| {
                d.pointer("/status/observedGeneration") != d.pointer("/metadata/generation")
            })
            .count();
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{pending} Deployments in blue never became available");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a person would run per namespace: the namespace, then its objects, each piped from
/// `kubectl get -o yaml` into `kubectl apply -f -`. Sequential, like a shell loop.
fn kubectl_copy(
    kubectl: &Path,
    from: &Path,
    to: &Path,
    namespaces: &[String],
) -> anyhow::Result<()> {
    for ns in namespaces {
        pipe(kubectl, from, to, &["get", "namespace", ns, "-o", "json"])?;
        pipe(
            kubectl,
            from,
            to,
            &[
                "get",
                "configmaps,secrets,deployments",
                "-n",
                ns,
                "-o",
                "json",
            ],
        )?;
    }
    Ok(())
}

fn pipe(kubectl: &Path, from: &Path, to: &Path, get: &[&str]) -> anyhow::Result<()> {
    let got = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(from)
        .args(get)
        .stdin(Stdio::null())
        .output()?;
    if !got.status.success() {
        anyhow::bail!(
            "kubectl {}: {}",
            get.join(" "),
            String::from_utf8_lossy(&got.stderr).trim()
        );
    }
    let mut listed: serde_json::Value = serde_json::from_slice(&got.stdout)?;
    strip_assigned(&mut listed);
    let mut sink = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(to)
        // The objects come from a server that validated them when they were written: kubectl's
        // client-side validation of the List (its models built from /openapi/v2) would only
        // make the measured copy slower.
        .args(["apply", "--validate=false", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        let mut stdin = sink
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("kubectl apply: no stdin"))?;
        std::io::Write::write_all(&mut stdin, &serde_json::to_vec(&listed)?)?;
    }
    let applied = sink.wait_with_output()?;
    if !applied.status.success() {
        anyhow::bail!(
            "kubectl apply (of {}): {}",
            get.join(" "),
            String::from_utf8_lossy(&applied.stderr).trim()
        );
    }
    Ok(())
}

/// What the source cluster assigned, removed from a `kubectl get -o json` answer (one object or
/// a List), as `jq 'del(.metadata.resourceVersion, …)'` would.
fn strip_assigned(listed: &mut serde_json::Value) {
    let strip = |o: &mut serde_json::Value| {
        if let Some(obj) = o.as_object_mut() {
            obj.remove("status");
        }
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for f in ["resourceVersion", "uid", "creationTimestamp", "generation"] {
                m.remove(f);
            }
        }
    };
    match listed.get_mut("items").and_then(|i| i.as_array_mut()) {
        Some(items) => items.iter_mut().for_each(strip),
        None => strip(listed),
    }
}

/// Namespaces, ConfigMaps, Secrets and Deployments in `cluster` outside the system namespaces.
async fn count_objects(sim: &rotor_sim::Sim, cluster: &str) -> anyhow::Result<usize> {
    let c = sim
        .cluster(cluster)
        .ok_or_else(|| anyhow::anyhow!("no cluster {cluster}"))?;
    let mut n = 0;
    for (group, plural) in [
        ("", "namespaces"),
        ("", "configmaps"),
        ("", "secrets"),
        ("apps", "deployments"),
    ] {
        let res = c.server.resource(group, "v1", plural)?;
        let list = c
            .server
            .list(&res, None, &Default::default())
            .await
            .map_err(|e| anyhow::anyhow!("listing {plural}: {e}"))?;
        n += list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|o| {
                        let ns = o
                            .pointer("/metadata/namespace")
                            .or_else(|| o.pointer("/metadata/name"))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        ns.starts_with("app-")
                    })
                    .count()
            })
            .unwrap_or(0);
    }
    Ok(n)
}
