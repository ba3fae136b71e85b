//! HaproxyShifter against a real HAProxy (started per test with HaproxyProcess) in front of real
//! HTTP backends. Skipped, with a message, only when `haproxy` is not installed.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{backend, bodies, client, closed_addr, count};
use rotor_traffic::haproxy::{
    ConfigOptions, EndpointConfig, HaproxyProcess, HaproxyShifter, find_haproxy,
};
use rotor_traffic::{TrafficError, TrafficShifter, Weights};

const EP: &str = "prod-aws-us-east-1-a";
const READY: Duration = Duration::from_secs(5);

fn haproxy_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let found = find_haproxy();
    if found.is_none() {
        eprintln!(
            "SKIPPED {test}: haproxy is not installed (apt-get install -y haproxy socat; \
             scripts/install-test-deps.sh does this)"
        );
    }
    found
}

/// HAProxy with one endpoint whose green address is unknown at config time. The listen port is
/// picked free and released, so a lost race is retried with another port.
async fn start(binary: &std::path::Path, blue: SocketAddr) -> (HaproxyProcess, SocketAddr) {
    let mut last = None;
    for _ in 0..3 {
        let listen = closed_addr();
        let endpoint = EndpointConfig::new(EP, listen).unwrap().with_blue(blue);
        match HaproxyProcess::start_with(binary, &[endpoint], &ConfigOptions::default(), READY)
            .await
        {
            Ok(process) => return (process, listen),
            Err(e) => last = Some(e),
        }
    }
    panic!("haproxy did not start: {last:?}");
}

/// HAProxy's count of accepted connections, the runtime socket's included.
async fn cum_conns(shifter: &HaproxyShifter) -> u64 {
    let info = shifter.raw("test", "show info").await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("CumConns: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CumConns in {info}"))
}

#[tokio::test]
async fn haproxy_shifts_traffic_by_weight() {
    let Some(binary) = haproxy_or_skip("haproxy_shifts_traffic_by_weight") else {
        return;
    };
    let (blue, green) = (backend("blue").await, backend("green").await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    let (http, url) = (client(), format!("http://{listen}/"));

    // As configured: all blue, green disabled at a placeholder address.
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());
    let err = shifter
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrafficError::GreenNotRegistered { .. }),
        "{err}"
    );
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());

    // Green appears: `set server … addr` at runtime, no reload.
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    let states = shifter.server_states(EP).await.unwrap();
    assert_eq!(states["green"].socket_addr(), Some(green.addr));
    assert!(states["green"].ready());

    shifter.set_weights(EP, Weights::all_blue()).await.unwrap();
    let got = bodies(&http, &url, 50).await;
    assert_eq!(count(&got, "blue"), 50, "{got:?}");

    let half = Weights::new(50, 50).unwrap();
    shifter.set_weights(EP, half).await.unwrap();
    assert_eq!(shifter.weights(EP).await.unwrap(), half);
    let got = bodies(&http, &url, 50).await;
    let (b, g) = (count(&got, "blue"), count(&got, "green"));
    assert_eq!(b + g, 50, "{got:?}");
    assert!(
        (23..=27).contains(&b),
        "roundrobin 50/50: blue {b}, green {g}: {got:?}"
    );

    let all_green = Weights::green(100).unwrap();
    shifter.set_weights(EP, all_green).await.unwrap();
    assert_eq!(shifter.weights(EP).await.unwrap(), all_green);
    let got = bodies(&http, &url, 50).await;
    assert_eq!(count(&got, "green"), 50, "{got:?}");

    // Rollback: one call, one runtime-API connection (CumConns counts the probe itself too).
    let before = cum_conns(&shifter).await;
    let started = Instant::now();
    shifter.rollback(EP).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        cum_conns(&shifter).await,
        before + 2,
        "rollback is one round trip"
    );
    assert!(took < Duration::from_secs(1), "rollback took {took:?}");
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());
    let got = bodies(&http, &url, 20).await;
    assert_eq!(count(&got, "blue"), 20, "{got:?}");

    // Detaching green puts it back in maintenance.
    shifter.register(EP, blue.addr, None).await.unwrap();
    assert!(!shifter.server_states(EP).await.unwrap()["green"].ready());
}

#[tokio::test]
async fn haproxy_errors_name_the_endpoint_and_leave_haproxy_alone() {
    let Some(binary) = haproxy_or_skip("haproxy_errors_name_the_endpoint_and_leave_haproxy_alone")
    else {
        return;
    };
    let (blue, green) = (backend("blue").await, backend("green").await);
    let (process, _listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    let thirty = Weights::green(30).unwrap();
    shifter.set_weights(EP, thirty).await.unwrap();

    // Invalid weights cannot be built, so they never reach HAProxy: no connection, no change.
    let before = cum_conns(&shifter).await;
    assert!(matches!(
        Weights::new(60, 50),
        Err(TrafficError::InvalidWeights {
            blue: 60,
            green: 50
        })
    ));
    assert!(Weights::green(101).is_err());
    assert_eq!(
        cum_conns(&shifter).await,
        before + 1,
        "only the probe connected"
    );
    assert_eq!(shifter.weights(EP).await.unwrap(), thirty);

    // A backend HAProxy does not have.
    let err = shifter
        .set_weights("missing", Weights::all_blue())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrafficError::Command { .. }), "{msg}");
    assert!(
        msg.contains("\"missing\"") && msg.contains("ep_missing"),
        "{msg}"
    );
    assert!(msg.contains("No such backend"), "{msg}");
    let err = shifter.weights("missing").await.unwrap_err();
    assert!(err.to_string().contains("ep_missing"), "{err}");
    let err = shifter
        .register("missing", blue.addr, Some(green.addr))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ep_missing"), "{err}");
    // An endpoint name that would inject runtime-API commands never reaches HAProxy.
    let err = shifter
        .set_weights("x; disable server ep_a/blue", Weights::all_blue())
        .await
        .unwrap_err();
    assert!(matches!(err, TrafficError::InvalidEndpoint { .. }), "{err}");
    assert_eq!(
        shifter.weights(EP).await.unwrap(),
        thirty,
        "nothing changed"
    );

    // No HAProxy on the socket: an I/O error naming endpoint and socket, at once.
    let gone = HaproxyShifter::new(process.socket_path().with_file_name("absent.sock"));
    let started = Instant::now();
    let err = gone.weights(EP).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, TrafficError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(EP) && err.to_string().contains("absent.sock"),
        "{err}"
    );
}

#[tokio::test]
async fn haproxy_process_that_cannot_bind_fails_fast_with_its_log() {
    let Some(binary) = haproxy_or_skip("haproxy_process_that_cannot_bind_fails_fast_with_its_log")
    else {
        return;
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = EndpointConfig::new(EP, taken.local_addr().unwrap()).unwrap();
    let started = Instant::now();
    let err = HaproxyProcess::start_with(&binary, &[endpoint], &ConfigOptions::default(), READY)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < READY,
        "failed fast: {:?}",
        started.elapsed()
    );
    assert!(matches!(err, TrafficError::Process { .. }), "{err}");
    assert!(err.to_string().contains("exited"), "{err}");
}
