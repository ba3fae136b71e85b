//! The swap's migration checkpoint is durable: it lives in the control plane, so a migration cut
//! off halfway (a crash of `rotor serve`) resumes in a new process where it stopped, and a run
//! after success applies nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use rotor_api::{MigrationPolicy, WorkloadSelector};
use rotor_controllers::migration::{
    CHECKPOINT_NAMESPACE, Checkpoints, Job, Member, Outcome, checkpoint_name,
};
use rotor_controllers::tasks::Progress;
use rotor_sim::{Fault, Sim, SimConfig};

const OBJECTS: usize = 1500;

async fn client(sim: &Sim, name: &str, base: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig(name, base).unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn recorded(control: &Client) -> usize {
    let api: Api<ConfigMap> = Api::namespaced(control.clone(), CHECKPOINT_NAMESPACE);
    api.get_opt(&checkpoint_name("green"))
        .await
        .unwrap()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("objects").cloned())
        .map(|o| o.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_migration_resumes_from_the_durable_checkpoint() {
    let sim = Sim::new(SimConfig {
        node_ready_delay: Duration::from_millis(10),
        ..SimConfig::default()
    });
    for name in ["control", "blue", "green", "green-2"] {
        sim.add_cluster(name, 35).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Every write to green takes a few milliseconds more, as over a real network: the first run
    // must still be going when its first checkpoint is flushed (after 500 ms), however fast the
    // machine, or it finishes before it can be cut off.
    let router = sim.router().layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            if req.method() != axum::http::Method::GET
                && req.uri().path().contains("/clusters/green/")
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            next.run(req).await
        },
    ));
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    let (control, blue, green) = (
        client(&sim, "control", &base).await,
        client(&sim, "blue", &base).await,
        client(&sim, "green", &base).await,
    );
    let cms: Api<ConfigMap> = Api::namespaced(blue.clone(), "default");
    for i in 0..OBJECTS {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("settings-{i:04}")},
            "data": {"n": i.to_string()},
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let member = |client: &Client, name: &str| Member {
        client: client.clone(),
        name: name.into(),
    };
    let job = Job {
        control: control.clone(),
        swap: "swap-1".into(),
        blue: member(&blue, "blue"),
        green: member(&green, "green"),
        workloads: WorkloadSelector::default(),
        policy: MigrationPolicy::default(),
        metrics: Arc::default(),
    };

    // First process: the migration runs until part of it is checkpointed, then green stops
    // answering and the process is gone (the future is dropped mid-flight).
    {
        let first = Checkpoints::default();
        let progress = Progress::default();
        let run = job.clone().run(&first, &progress);
        let deadline = Instant::now() + Duration::from_secs(60);
        tokio::pin!(run);
        loop {
            tokio::select! {
                out = &mut run => panic!("finished before it was cut off: {:?}", out.is_ok()),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if recorded(&control).await > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint written within 60 s"
            );
        }
        assert!(sim.set_fault("green", Fault::ApiUnavailable));
        // The process is gone: `run` and `first` are dropped here.
    }
    let at_crash = recorded(&control).await;
    assert!(at_crash > 0, "{at_crash}");
    sim.clear_faults("green");

    // Second process: resumes; what the checkpoint holds is not applied again.
    let second = Checkpoints::default();
    let progress = Progress::default();
    let out = job
        .clone()
        .run(&second, &progress)
        .await
        .expect("resumed migration");
    let Outcome::Done {
        total,
        applied,
        resumed,
    } = out
    else {
        panic!("refused");
    };
    assert!(total as usize >= OBJECTS, "{total}");
    assert_eq!(applied, total);
    // Progress counts what the checkpoint already held and what this run applied.
    assert_eq!(progress.read(), (total, total));
    assert!(
        resumed as usize >= at_crash && resumed < total,
        "resumed {resumed}, checkpointed {at_crash}, total {total}"
    );
    let in_green = Api::<ConfigMap>::namespaced(green.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| c.name_any().starts_with("settings-"))
        .count();
    assert_eq!(in_green, OBJECTS);
    assert_eq!(recorded(&control).await, total as usize);

    // Third process after success: nothing to apply.
    let third = Arc::new(Checkpoints::default());
    let Outcome::Done {
        resumed, applied, ..
    } = job
        .clone()
        .run(&third, &Progress::default())
        .await
        .expect("no-op run")
    else {
        panic!("refused");
    };
    assert_eq!((resumed, applied), (total, total));

    // The same swap run again with a new green (a retried swap keeps its name): what the
    // first green holds counts for nothing in the second.
    let green_2 = client(&sim, "green-2", &base).await;
    let retried = Job {
        green: member(&green_2, "green-2"),
        ..job.clone()
    };
    let Outcome::Done {
        resumed, applied, ..
    } = retried
        .run(&third, &Progress::default())
        .await
        .expect("a run into a new green")
    else {
        panic!("refused");
    };
    assert_eq!((resumed, applied), (0, total));
    // The cut-off run planned and loaded its checkpoint but never finished applying; the
    // three that finished went through every stage.
    use rotor_controllers::metrics::MigrationStage;
    let count = |stage| job.metrics.migration_stage_total(stage).0;
    assert_eq!(count(MigrationStage::Plan), 4);
    assert_eq!(count(MigrationStage::Checkpoint), 4);
    assert_eq!(count(MigrationStage::Apply), 3);
    let in_green_2 = Api::<ConfigMap>::namespaced(green_2, "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| c.name_any().starts_with("settings-"))
        .count();
    assert_eq!(in_green_2, OBJECTS);

    // Forgetting removes it from the control plane.
    third.forget(&control, "green").await;
    assert_eq!(recorded(&control).await, 0);
}
