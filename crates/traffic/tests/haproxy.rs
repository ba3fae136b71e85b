//! HaproxyShifter against a real HAProxy (started per test with HaproxyProcess) in front of real
//! HTTP backends. Skipped, with a message, only when `haproxy` is not installed and `CI` is unset.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use common::{
    HttpClient, REQUEST_TIMEOUT, attach, backend, bodies, client, closed_addr, count,
    failing_backend, get_text, streaming_backend,
};
use http_body_util::{BodyExt, Full};
use rotor_traffic::haproxy::{
    ConfigOptions, EndpointConfig, HaproxyProcess, HaproxyShifter, find_haproxy,
};
use rotor_traffic::{BackendCounters, BackendStats, TrafficError, TrafficShifter, Weights};

const EP: &str = "prod-aws-us-east-1-a";
const READY: Duration = Duration::from_secs(5);

/// The haproxy binary: `None` (skip) where it is not installed, a failure in CI.
fn haproxy() -> Option<std::path::PathBuf> {
    rotor_test_support::required("haproxy", find_haproxy())
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
    let Some(binary) = haproxy() else {
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
    let Some(binary) = haproxy() else {
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
    let Some(binary) = haproxy() else {
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

/// `n` GETs of `url` one after the other, all within `within`: (failed, bodies of the rest).
async fn get_many(
    http: &HttpClient,
    url: &str,
    n: usize,
    within: Duration,
) -> (usize, Vec<String>) {
    let deadline = Instant::now() + within;
    let (mut failed, mut ok) = (0, Vec::with_capacity(n));
    for i in 0..n {
        assert!(
            Instant::now() < deadline,
            "{i} of {n} GETs took over {within:?}"
        );
        let (status, body) = get_text(http, url).await;
        if status.is_success() {
            ok.push(body);
        } else {
            failed += 1;
        }
    }
    (failed, ok)
}

/// POST an empty body to `url`: the status.
async fn post_status(http: &HttpClient, url: &str) -> StatusCode {
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let exchange = async {
        let response = http.request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("POST bounded")
}

#[tokio::test]
async fn haproxy_retries_a_failing_green_on_blue_and_counts_green_failures() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (backend("blue").await, failing_backend("green").await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::new(50, 50).unwrap(),
    )
    .await;
    let (http, url) = (client(), format!("http://{listen}/"));
    let before = shifter.backend_stats(EP).await.unwrap();
    assert_eq!(before.green, BackendCounters::default());

    // Green answers 503 to everything; every such request is retried on blue.
    let (failed, got) = get_many(&http, &url, 300, Duration::from_secs(30)).await;
    assert_eq!(failed, 0, "clients saw none of green's 503s");
    assert_eq!(count(&got, "blue"), 300);

    let window = stats_when(&shifter, &before, |w| {
        w.blue.requests == 300 && w.green.failures == w.green.requests
    })
    .await;
    assert_eq!(
        window.blue,
        BackendCounters {
            requests: 300,
            failures: 0
        },
        "blue answered everything: {window:?}"
    );
    assert_eq!(
        window.green.failures, window.green.requests,
        "every attempt on green failed: {window:?}"
    );
    // Roundrobin picks green for at least every other request (in practice nearly all: each
    // redispatch to blue advances the rotation, so the next request starts on green again).
    assert!(
        window.green.failures >= 150,
        "green's retried 503s are counted: {window:?}"
    );
    eprintln!("green answering 503, 300 GETs at 50/50, 0 failed: {window:?}");
    let states = shifter.server_states(EP).await.unwrap();
    assert!(states["green"].ready(), "no health check took green out");

    // Not idempotent: a POST is sent once, so green's 503 reaches the client.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(post_status(&http, &url).await);
    }
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(
        (3..=7).contains(&unavailable),
        "50/50 without retries: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| s.is_success()).count(),
        10 - unavailable
    );
}

#[tokio::test]
async fn haproxy_backend_stats_of_a_healthy_green() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (backend("blue").await, backend("green").await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::new(50, 50).unwrap(),
    )
    .await;
    let before = shifter.backend_stats(EP).await.unwrap();
    let (http, url) = (client(), format!("http://{listen}/"));
    let (failed, got) = get_many(&http, &url, 300, Duration::from_secs(30)).await;
    assert_eq!(failed, 0);
    let window = stats_when(&shifter, &before, |w| {
        w.blue.requests + w.green.requests == 300
    })
    .await;
    assert_eq!((window.blue.failures, window.green.failures), (0, 0));
    assert_eq!(window.blue.requests + window.green.requests, 300);
    assert_eq!(window.green.requests as usize, count(&got, "green"));
    assert!(
        (140..=160).contains(&window.green.requests),
        "about half to green: {window:?}"
    );

    eprintln!("healthy green, 300 GETs at 50/50: {window:?}");

    // Sampled under concurrent load, requests in flight are not failures.
    let before = shifter.backend_stats(EP).await.unwrap();
    let urls = vec![url.clone()];
    let done = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let report = rotor_traffic::load::run(&urls, 1500, 8, Duration::from_secs(5)).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        report
    };
    let sample = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut samples = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "load took over 30 s");
            let now = shifter.backend_stats(EP).await.unwrap().since(&before);
            assert_eq!((now.blue.failures, now.green.failures), (0, 0), "{now:?}");
            samples += 1;
        }
        samples
    };
    let (report, samples) = tokio::join!(load, sample);
    assert_eq!((report.requests, report.failed), (1500, 0));
    let window = stats_when(&shifter, &before, |w| {
        w.blue.requests + w.green.requests == 1500
    })
    .await;
    assert_eq!(window.blue.requests + window.green.requests, 1500);
    assert_eq!((window.blue.failures, window.green.failures), (0, 0));
    eprintln!("{samples} samples under load, none with failures: {window:?}");

    // Unknown endpoints are errors naming the backend.
    let err = shifter.backend_stats("missing").await.unwrap_err();
    assert!(matches!(err, TrafficError::Command { .. }), "{err}");
    assert!(err.to_string().contains("ep_missing"), "{err}");
}

/// The counters since `before` once `settled` holds for them, or as they are after 2 s: HAProxy
/// may count a request's outcome just after the client has its answer.
async fn stats_when(
    shifter: &impl TrafficShifter,
    before: &BackendStats,
    settled: impl Fn(&BackendStats) -> bool,
) -> BackendStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let window = shifter.backend_stats(EP).await.unwrap().since(before);
        if settled(&window) || Instant::now() > deadline {
            return window;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pins the documented difference from the simulator: HAProxy redispatches only to a server
/// with weight > 0, so at 100 % green a failing green fails requests even though blue is up.
#[tokio::test]
async fn haproxy_does_not_fall_back_to_a_blue_at_weight_0() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (backend("blue").await, failing_backend("green").await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(100).unwrap(),
    )
    .await;
    let before = shifter.backend_stats(EP).await.unwrap();
    let (http, url) = (client(), format!("http://{listen}/"));
    let (failed, _) = get_many(&http, &url, 5, Duration::from_secs(10)).await;
    assert_eq!(failed, 5);
    // Each request tried on green 1 + `retries` (3) times. HAProxy may count the last failure
    // just after the client has its answer (seen once in CI: 20 requests, 19 failures), so the
    // counters get a moment to settle.
    let want = BackendCounters {
        requests: 20,
        failures: 20,
    };
    let window = stats_when(&shifter, &before, |w| w.green == want).await;
    assert_eq!(window.blue, BackendCounters::default());
    assert_eq!(window.green, want);
}

/// Flipping all traffic between blue and green under load never passes through a moment with
/// no weighted server (HAProxy would answer 503): the regression of a rollback from 100 % green
/// that set green to 0 before blue to 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_flips_between_all_blue_and_all_green_without_a_failed_request() {
    let Some(binary) = haproxy() else {
        return;
    };
    let blue = backend("blue").await;
    let green = backend("green").await;
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    let load = rotor_traffic::load::Load::start(
        vec![format!("http://{listen}/")],
        8,
        Duration::from_secs(5),
    );
    for _ in 0..100 {
        shifter
            .set_weights(EP, Weights::green(100).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        shifter.set_weights(EP, Weights::all_blue()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = load.stop().await;
    assert!(report.requests > 200, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

/// When green takes over blue's slot for good (`register(green, None)`, the swap's
/// Decommissioning), no request may reach the retired blue any more, not even over a
/// keep-alive connection HAProxy pooled to blue's old address while blue carried traffic: a
/// retired blue is scaled down or deleted, and would answer 503 or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_blue_gets_no_request_once_green_takes_its_slot() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (backend("blue").await, backend("green").await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    let (http, url) = (client(), format!("http://{listen}/"));
    // Both carry traffic (connections to both pooled), then green takes it all, then blue's
    // slot is given to green.
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(50).unwrap(),
    )
    .await;
    let served = bodies(&http, &url, 40).await;
    assert!(count(&served, "blue") > 0 && count(&served, "green") > 0);
    shifter
        .set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    shifter.register(EP, green.addr, None).await.unwrap();
    let served = bodies(&http, &url, 200).await;
    assert_eq!(count(&served, "blue"), 0, "the retired blue still served");
    assert_eq!(count(&served, "green"), 200);
}

/// `scur` as rotor reads it: a stream stays on blue after blue's weight goes to 0, a new one
/// goes to green, and blue's count returns to zero once its client leaves.
#[tokio::test]
async fn haproxy_counts_open_sessions_per_server() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (streaming_backend().await, streaming_backend().await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::all_blue(),
    )
    .await;
    common::sessions_follow_streams(&shifter, EP, &format!("http://{listen}/stream")).await;
}

/// `show sess all` as rotor reads it: the streams of `ep_<endpoint>` still waiting for their
/// server's answer head, aged from their accept dates; an answered stream is not counted. With
/// the log to rotor it tells whether green answered a request accepted after them; without,
/// it cannot tell.
#[tokio::test]
async fn haproxy_counts_unanswered_requests_per_server() {
    let Some(binary) = haproxy() else {
        return;
    };
    let (blue, green) = (streaming_backend().await, common::holding_backend().await);
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.backend.addr),
        Weights::green(100).unwrap(),
    )
    .await;
    let base = format!("http://{listen}");
    let blind = HaproxyShifter::new(process.socket_path());
    common::unanswered_follows_held_requests(&shifter, EP, &green, &base, Some(&blind)).await;
}

/// An operator's HAProxy is checked before rotor drives it: rotor's own config passes; a copy
/// without `option redispatch` is refused, naming the backend and the setting.
#[tokio::test]
async fn an_incomplete_operator_config_is_refused_naming_the_setting() {
    let Some(binary) = haproxy() else {
        return;
    };
    let blue = backend("blue").await;
    let (process, _) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    shifter
        .check(process.config_path())
        .await
        .expect("rotor's own config passes");

    let full = std::fs::read_to_string(process.config_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lacking = dir.path().join("haproxy.cfg");
    std::fs::write(&lacking, full.replace("    option redispatch 1\n", "")).unwrap();
    let err = shifter.check(&lacking).await.unwrap_err();
    let TrafficError::Unfit { problems, .. } = &err else {
        panic!("not refused as unfit: {err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].section, format!("backend ep_{EP}"));
    assert_eq!(problems[0].setting, "option redispatch");
    assert!(
        err.to_string().contains("option redispatch: unset"),
        "{err}"
    );
}

/// Behind HAProxy latencies come from its per-request logs to rotor: a green 300 ms late shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_latencies_come_from_its_logs() {
    let Some(binary) = haproxy() else {
        return;
    };
    let blue = backend("blue").await;
    let green = common::slow_backend("green", Duration::from_millis(300)).await;
    let (process, listen) = start(&binary, blue.addr).await;
    let shifter = process.shifter();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(50).unwrap(),
    )
    .await;
    common::latencies_tell_a_slow_green(&shifter, EP, &format!("http://{listen}/")).await;
    // A shifter not fed by the logs says it cannot time requests.
    let blind = HaproxyShifter::new(process.socket_path());
    assert!(matches!(
        blind.latencies(EP).await,
        Err(TrafficError::NoLatencies { .. })
    ));
}
