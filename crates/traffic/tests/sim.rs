//! SimShifter against real HTTP backends through its real listener.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{
    backend, bodies, client, closed_addr, count, failing_backend, get_text, silent_backend,
};
use rotor_traffic::sim::{SimShifter, TrafficStats};
use rotor_traffic::{TrafficError, TrafficShifter, Weights};

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
        }
    );
    shifter.reset_stats(EP).unwrap();
    assert_eq!(shifter.stats(EP).unwrap(), TrafficStats::default());
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
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    shifter
        .set_weights(EP, Weights::green(50).unwrap())
        .await
        .unwrap();
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
        }
    );
    assert_eq!(stats.failure_rate(rotor_traffic::Backend::Green), 1.0);
    assert_eq!(stats.failure_rate(rotor_traffic::Backend::Blue), 0.0);
}

#[tokio::test]
async fn sim_unreachable_or_silent_green_fails_fast_and_is_counted() {
    let blue = backend("blue").await;
    let silent = silent_backend().await;
    let shifter = SimShifter::with_timeouts(Duration::from_millis(500), Duration::from_millis(300));
    let server = shifter.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = client();

    // Nothing listens: connection refused → 502 at once.
    shifter
        .register(EP, blue.addr, Some(closed_addr()))
        .await
        .unwrap();
    shifter
        .set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
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
    shifter
        .register(EP, blue.addr, Some(green.addr))
        .await
        .unwrap();
    shifter
        .set_weights(EP, Weights::green(30).unwrap())
        .await
        .unwrap();
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
