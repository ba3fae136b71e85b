//! SimShifter against real HTTP backends through its real listener.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, Request, StatusCode};
use bytes::Bytes;
use common::{
    attach, backend, bodies, client, closed_addr, count, failing_backend, get_text, silent_backend,
    streaming_backend,
};
use http_body_util::{BodyExt, Full};
use rotor_traffic::sim::{BACKEND_HEADER, RETRIED_FROM_HEADER, SimShifter, TrafficStats};
use rotor_traffic::{BackendCounters, BackendStats, TrafficError, TrafficShifter, Weights};

const EP: &str = "prod-sim-1";

#[tokio::test]
async fn sim_shifts_traffic_by_weight_with_exact_counts() {
    let (blue, green) = (backend("blue").await, backend("green").await);
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    let (http, url) = (client(), server.url(EP));
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());

    shifter.set_weights(EP, Weights::all_blue()).await.unwrap();
    let got = bodies(&http, &url, 50).await;
    assert_eq!(count(&got, "blue"), 50, "{got:?}");

    shifter
        .set_weights(EP, Weights::green(50).unwrap())
        .await
        .unwrap();
    assert_eq!(
        shifter.weights(EP).await.unwrap(),
        Weights::new(50, 50).unwrap()
    );
    let got = bodies(&http, &url, 50).await;
    let expected: Vec<&str> = ["blue", "green"].into_iter().cycle().take(50).collect();
    assert_eq!(got, expected, "50/50 alternates exactly");

    shifter
        .set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    assert_eq!(
        shifter.weights(EP).await.unwrap(),
        Weights::new(0, 100).unwrap()
    );
    let got = bodies(&http, &url, 50).await;
    assert_eq!(count(&got, "green"), 50, "{got:?}");

    shifter
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap();
    let got = bodies(&http, &url, 100).await;
    assert_eq!(count(&got, "green"), 10, "10 % of 100 exactly");

    shifter.rollback(EP).await.unwrap();
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());
    let got = bodies(&http, &url, 10).await;
    assert_eq!(count(&got, "blue"), 10, "{got:?}");

    assert_eq!(
        shifter.stats(EP).unwrap(),
        TrafficStats {
            requests: 260,
            failures: 0,
            to_blue: 50 + 25 + 90 + 10,
            to_green: 25 + 50 + 10,
            blue_failures: 0,
            green_failures: 0,
            retries: 0,
        }
    );
    shifter.reset_stats(EP).unwrap();
    assert_eq!(shifter.stats(EP).unwrap(), TrafficStats::default());
    // The cumulative per-backend counters survive the reset.
    assert_eq!(
        shifter.backend_stats(EP).await.unwrap(),
        BackendStats {
            blue: BackendCounters {
                requests: 175,
                failures: 0
            },
            green: BackendCounters {
                requests: 85,
                failures: 0
            },
        }
    );
}

#[tokio::test]
async fn sim_forwards_path_and_query_without_the_endpoint_segment() {
    let (blue, green) = (backend("blue").await, backend("green").await);
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    let http = client();
    let (status, body) = get_text(&http, &format!("{}/echo/a/b?x=1&y=2", server.url(EP))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "blue /echo/a/b?x=1&y=2")
    );
    let (status, body) = get_text(&http, &server.url(EP)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "blue"));

    let (status, _) = get_text(&http, &server.url("nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown endpoint");
    assert_eq!(
        shifter.stats(EP).unwrap().requests,
        2,
        "404s are not counted"
    );
}

#[tokio::test]
async fn sim_counts_5xx_as_failures_of_that_backend() {
    let (blue, green) = (backend("blue").await, failing_backend("green").await);
    let shifter = SimShifter::new();
    // Without retries every failure of the picked backend reaches the client.
    shifter.set_retry(false);
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(50).unwrap(),
    )
    .await;
    let http = client();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get_text(&http, &server.url(EP)).await.0);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count(),
        10
    );
    let stats = shifter.stats(EP).unwrap();
    assert_eq!(
        stats,
        TrafficStats {
            requests: 20,
            failures: 10,
            to_blue: 10,
            to_green: 10,
            blue_failures: 0,
            green_failures: 10,
            retries: 0,
        }
    );
    assert_eq!(stats.failure_rate(rotor_traffic::Backend::Green), 1.0);
    assert_eq!(stats.failure_rate(rotor_traffic::Backend::Blue), 0.0);
    let backends = shifter.backend_stats(EP).await.unwrap();
    assert_eq!((backends.green.requests, backends.green.failures), (10, 10));
    assert_eq!((backends.blue.requests, backends.blue.failures), (10, 0));
}

#[tokio::test]
async fn sim_unreachable_or_silent_green_fails_fast_and_is_counted() {
    let blue = backend("blue").await;
    let silent = silent_backend().await;
    let shifter = SimShifter::with_timeouts(Duration::from_millis(500), Duration::from_millis(300));
    // Without retries (with them blue would answer: sim_retry_* below).
    shifter.set_retry(false);
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = client();

    // Nothing listens: connection refused → 502 at once.
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(closed_addr()),
        Weights::green(100).unwrap(),
    )
    .await;
    let started = Instant::now();
    for _ in 0..5 {
        let (status, body) = get_text(&http, &server.url(EP)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.contains(EP) && body.contains("green"), "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Accepts but never answers → 504 after the request timeout, not a hang.
    shifter
        .register(EP, blue.addr, Some(silent.addr))
        .await
        .unwrap();
    let started = Instant::now();
    let (status, _) = get_text(&http, &server.url(EP)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let stats = shifter.stats(EP).unwrap();
    assert_eq!(
        (stats.requests, stats.failures, stats.green_failures),
        (6, 6, 6)
    );
    assert_eq!(stats.to_green, 6);
}

#[tokio::test]
async fn sim_rejects_what_it_cannot_do() {
    let blue = backend("blue").await;
    let shifter = SimShifter::new();

    let err = shifter.weights("nope").await.unwrap_err();
    assert!(matches!(err, TrafficError::UnknownEndpoint { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = shifter.register("a;b", blue.addr, None).await.unwrap_err();
    assert!(matches!(err, TrafficError::InvalidEndpoint { .. }), "{err}");

    shifter.register(EP, blue.addr, None).await.unwrap();
    let err = shifter
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrafficError::GreenNotRegistered { green: 10, .. }),
        "{err}"
    );
    assert!(
        Weights::new(60, 50).is_err(),
        "invalid weights never reach a shifter"
    );
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());

    // Detaching green sends everything back to blue.
    let green = backend("green").await;
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(30).unwrap(),
    )
    .await;
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    assert_eq!(
        shifter.weights(EP).await.unwrap(),
        Weights::green(30).unwrap(),
        "re-registering keeps the weights"
    );
    shifter.register(EP, blue.addr, None).await.unwrap();
    assert_eq!(shifter.weights(EP).await.unwrap(), Weights::all_blue());
    assert_eq!(shifter.endpoints(), vec![EP.to_string()]);
}

#[tokio::test]
async fn sim_listener_reports_bind_errors_and_stops_on_drop() {
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    let err = shifter.serve(addr).await.unwrap_err();
    assert!(matches!(err, TrafficError::Listen { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
    let connect =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect attempt bounded");
    assert!(connect.is_err(), "listener closed after shutdown");
}

/// GET (or `method`) `url`: status, the backend that answered and the one retried from.
async fn send(
    http: &common::HttpClient,
    method: Method,
    url: &str,
) -> (StatusCode, String, Option<String>) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let exchange = async {
        let response = http.request(request).await.unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
        };
        let (backend, retried) = (header(BACKEND_HEADER), header(RETRIED_FROM_HEADER));
        let status = response.status();
        response.into_body().collect().await.unwrap();
        (status, backend.unwrap_or_default(), retried)
    };
    tokio::time::timeout(common::REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{url} took longer than {:?}", common::REQUEST_TIMEOUT))
}

#[tokio::test]
async fn sim_retry_hides_a_failing_green_from_clients_but_not_from_backend_stats() {
    let (blue, green) = (backend("blue").await, failing_backend("green").await);
    let shifter = SimShifter::new();
    assert!(shifter.retry(), "retries are on by default");
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::new(50, 50).unwrap(),
    )
    .await;
    let before = shifter.backend_stats(EP).await.unwrap();
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut failed, mut retried) = (0, 0);
    for i in 0..200 {
        assert!(Instant::now() < deadline, "200 requests took over 20 s");
        let (status, answered, retried_from) = send(&http, Method::GET, &server.url(EP)).await;
        if !status.is_success() {
            failed += 1;
        }
        assert_eq!(answered, "blue", "request {i}: {status}");
        if retried_from.as_deref() == Some("green") {
            retried += 1;
        }
    }
    assert_eq!(failed, 0, "no client saw green's 503s");
    assert_eq!(
        retried, 100,
        "every request picked for green was retried on blue"
    );

    let stats = shifter.stats(EP).unwrap();
    assert_eq!(
        stats,
        TrafficStats {
            requests: 200,
            failures: 0,
            to_blue: 200,
            to_green: 100,
            blue_failures: 0,
            green_failures: 100,
            retries: 100,
        }
    );
    assert_eq!(
        stats.to_blue + stats.to_green,
        stats.requests + stats.retries
    );
    assert_eq!(stats.failure_rate(rotor_traffic::Backend::Green), 1.0);
    let window = shifter.backend_stats(EP).await.unwrap().since(&before);
    assert_eq!(
        window,
        BackendStats {
            blue: BackendCounters {
                requests: 200,
                failures: 0
            },
            green: BackendCounters {
                requests: 100,
                failures: 100
            },
        }
    );
    assert_eq!(window.green.failure_rate(), 1.0);

    // Not idempotent: a POST is not sent twice, so green's 503 reaches the client.
    let mut post_failures = 0;
    for _ in 0..4 {
        let (status, answered, retried_from) = send(&http, Method::POST, &server.url(EP)).await;
        assert_eq!(retried_from, None);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(answered, "green");
            post_failures += 1;
        }
    }
    assert_eq!(post_failures, 2, "50/50: two of four POSTs went to green");
    assert_eq!(shifter.stats(EP).unwrap().failures, 2);

    // Retries off: the same GETs fail half the time.
    shifter.set_retry(false);
    let got: Vec<StatusCode> = statuses(&http, &server.url(EP), 10).await;
    assert_eq!(
        got.iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count(),
        5
    );
}

async fn statuses(http: &common::HttpClient, url: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(send(http, Method::GET, url).await.0);
    }
    out
}

#[tokio::test]
async fn sim_retry_cannot_hide_failures_when_blue_fails_too() {
    let (blue, green) = (
        failing_backend("blue").await,
        failing_backend("green").await,
    );
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::new(50, 50).unwrap(),
    )
    .await;
    let http = client();
    for i in 0..20 {
        let (status, answered, retried_from) = send(&http, Method::GET, &server.url(EP)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "request {i}");
        // Tried once on each, no more: the answer is the retry's.
        let (first, second) = if i % 2 == 0 {
            ("blue", "green")
        } else {
            ("green", "blue")
        };
        assert_eq!(
            (answered.as_str(), retried_from.as_deref()),
            (second, Some(first))
        );
    }
    let stats = shifter.stats(EP).unwrap();
    assert_eq!(
        (stats.requests, stats.failures, stats.retries),
        (20, 20, 20)
    );
    let backends = shifter.backend_stats(EP).await.unwrap();
    assert_eq!(
        backends,
        BackendStats {
            blue: BackendCounters {
                requests: 20,
                failures: 20
            },
            green: BackendCounters {
                requests: 20,
                failures: 20
            },
        }
    );
}

#[tokio::test]
async fn sim_retry_falls_back_to_a_backend_at_weight_0() {
    let blue = backend("blue").await;
    let silent = silent_backend().await;
    let shifter = SimShifter::with_timeouts(Duration::from_millis(500), Duration::from_millis(300));
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = client();

    // All traffic on a green nothing listens on: blue (weight 0) answers, at once.
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(closed_addr()),
        Weights::green(100).unwrap(),
    )
    .await;
    let started = Instant::now();
    for _ in 0..5 {
        let (status, answered, retried_from) = send(&http, Method::GET, &server.url(EP)).await;
        assert_eq!(
            (status, answered.as_str(), retried_from.as_deref()),
            (StatusCode::OK, "blue", Some("green"))
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A green that never answers: blue answers after green's request timeout.
    shifter
        .register(EP, blue.addr, Some(silent.addr))
        .await
        .unwrap();
    let started = Instant::now();
    let (status, answered, _) = send(&http, Method::GET, &server.url(EP)).await;
    assert_eq!((status, answered.as_str()), (StatusCode::OK, "blue"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );

    let stats = shifter.stats(EP).unwrap();
    assert_eq!(
        (stats.requests, stats.failures, stats.green_failures),
        (6, 0, 6)
    );
    let backends = shifter.backend_stats(EP).await.unwrap();
    assert_eq!(backends.green.failures, 6);
    assert_eq!(
        backends.blue,
        BackendCounters {
            requests: 6,
            failures: 0
        }
    );

    // Without green, a failing blue has nothing to fall back on.
    let dead_blue = closed_addr();
    shifter.register(EP, dead_blue, None).await.unwrap();
    let (status, answered, retried_from) = send(&http, Method::GET, &server.url(EP)).await;
    assert_eq!(
        (status, answered.as_str(), retried_from),
        (StatusCode::BAD_GATEWAY, "blue", None)
    );
    assert_eq!(shifter.stats(EP).unwrap().failures, 1);
}

/// A stream stays a stream through the router (its first message arrives while it is still
/// open), and an answer that breaks off mid-body counts against the backend that sent it.
#[tokio::test]
async fn sim_passes_streams_through_and_counts_a_broken_answer_against_its_backend() {
    let (blue, green) = (streaming_backend().await, streaming_backend().await);
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::all_blue(),
    )
    .await;
    let http = client();

    let uri: axum::http::Uri = format!("{}/stream", server.url(EP)).parse().unwrap();
    let first = async {
        let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
        let resp = http.request(req).await.expect("stream opens");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let frame = body.frame().await.expect("a frame").expect("no error");
        (frame.into_data().expect("data"), body)
    };
    let (data, body) = tokio::time::timeout(common::REQUEST_TIMEOUT, first)
        .await
        .expect("the first message before the stream ends");
    // The backend never ends this stream: a router that read answers whole would time out.
    assert_eq!(&data[..], b"data: 0\n\n");
    drop(body);

    shifter
        .set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    let uri: axum::http::Uri = format!("{}/broken", server.url(EP)).parse().unwrap();
    let broken = async {
        let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
        let resp = http.request(req).await.expect("head arrives");
        (resp.status(), resp.into_body().collect().await.is_err())
    };
    let (status, failed) = tokio::time::timeout(common::REQUEST_TIMEOUT, broken)
        .await
        .expect("answer within the bound");
    assert_eq!((status, failed), (StatusCode::OK, true));
    let stats = shifter.stats(EP).unwrap();
    assert_eq!((stats.green_failures, stats.failures), (1, 1), "{stats:?}");
    assert_eq!(stats.blue_failures, 0, "{stats:?}");
}

/// The router counts what it has open on each backend: a stream stays on blue after blue's
/// weight goes to 0 (draining moves no open session), a new one goes to green, and blue's count
/// returns to zero once its client leaves.
#[tokio::test]
async fn sim_counts_open_sessions_per_backend() {
    let (blue, green) = (streaming_backend().await, streaming_backend().await);
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::all_blue(),
    )
    .await;
    common::sessions_follow_streams(&shifter, EP, &format!("{}/stream", server.url(EP))).await;
}

/// The router counts the attempts still waiting for their answer's head, by age, apart from
/// the streams that have answered.
#[tokio::test]
async fn sim_counts_unanswered_requests_per_backend() {
    let (blue, green) = (streaming_backend().await, common::holding_backend().await);
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.backend.addr),
        Weights::green(100).unwrap(),
    )
    .await;
    common::unanswered_follows_held_requests(&shifter, EP, &green, &server.url(EP), None).await;
}

/// The router times each attempt to its answer's head: a green 300 ms late shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_latencies_per_backend() {
    let blue = backend("blue").await;
    let green = common::slow_backend("green", Duration::from_millis(300)).await;
    let shifter = SimShifter::new();
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    attach(
        &shifter,
        EP,
        blue.addr,
        Some(green.addr),
        Weights::green(50).unwrap(),
    )
    .await;
    common::latencies_tell_a_slow_green(&shifter, EP, &server.url(EP)).await;
}
