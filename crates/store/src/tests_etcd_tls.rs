//! The etcd backend over TLS, against a real etcd run with `--client-cert-auth`: a store with a
//! client certificate from etcd's CA works as over plain HTTP; one from another CA, or none, or
//! a CA that did not sign etcd's certificate, is refused quickly and says why.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::etcd::EtcdStore;
use crate::etcd_tls::{ClientIdentity, EtcdTls};
use crate::{Store, WatchEvent};
use rotor_test_support::certs::{Ca, Pem};
use rotor_test_support::etcd::{self, EtcdProcess};

/// A refused handshake fails within this (the store's connect and first-read bounds).
const REFUSED_WITHIN: Duration = Duration::from_secs(15);

fn identity(pem: &Pem) -> ClientIdentity {
    ClientIdentity {
        certificate: pem.certificate.clone(),
        key: pem.key.clone(),
    }
}

/// The TLS settings `rotor serve --etcd-cafile … --etcd-certfile … --etcd-keyfile …` makes.
fn settings(etcd: &EtcdProcess) -> EtcdTls {
    let files = etcd.tls.as_ref().expect("a TLS etcd");
    EtcdTls {
        ca: files.ca.pem.certificate.clone(),
        client: Some(identity(&files.client)),
    }
}

/// Connecting with `tls` fails, within [`REFUSED_WITHIN`]; the error's text.
async fn refused(etcd: &EtcdProcess, tls: &EtcdTls) -> String {
    let started = Instant::now();
    let result =
        EtcdStore::connect_with(std::slice::from_ref(&etcd.url), "/rotor", Some(tls)).await;
    let elapsed = started.elapsed();
    let error = result.err().expect("etcd refuses the connection");
    eprintln!("refused: {error}");
    assert!(elapsed < REFUSED_WITHIN, "bounded: {elapsed:?}");
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_a_client_certificate_puts_gets_and_watches() {
    let Some(etcd) = etcd::for_test_tls().await else {
        return;
    };
    assert!(etcd.url.starts_with("https://"), "{}", etcd.url);
    let store = EtcdStore::connect_with(
        std::slice::from_ref(&etcd.url),
        "/rotor",
        Some(&settings(&etcd)),
    )
    .await
    .expect("connects over TLS");
    let mut rx = store.watch("/t/", 0).await.expect("watch");
    let put = store
        .create("/t/a", Bytes::from_static(b"one"))
        .await
        .expect("create");
    let got = store.get("/t/a").await.expect("get").expect("stored");
    assert_eq!(got.value, Bytes::from_static(b"one"));
    assert_eq!(got.mod_revision, put.mod_revision);
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("watch open");
    match event {
        WatchEvent::Put { kv, .. } => assert_eq!(
            (kv.key.as_str(), kv.mod_revision),
            ("/t/a", put.mod_revision)
        ),
        other => panic!("expected the put, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_refuses_a_foreign_or_missing_client_certificate_and_an_unknown_server_ca() {
    let Some(etcd) = etcd::for_test_tls().await else {
        return;
    };
    let good = settings(&etcd);
    let other = Ca::new("another-ca").expect("CA");
    let foreign = EtcdTls {
        client: Some(identity(&other.client("rotor").expect("client"))),
        ..good.clone()
    };
    let text = refused(&etcd, &foreign).await;
    assert!(
        text.contains("is the client certificate signed by"),
        "{text}"
    );
    let text = refused(
        &etcd,
        &EtcdTls {
            client: None,
            ..good.clone()
        },
    )
    .await;
    assert!(text.contains("without a client certificate"), "{text}");
    // etcd's certificate does not chain to the CA given: rotor refuses it.
    let unknown = EtcdTls {
        ca: other.pem.certificate.clone(),
        ..good
    };
    let text = refused(&etcd, &unknown).await;
    assert!(
        text.contains("does not chain to the etcd CA given"),
        "{text}"
    );
}
