//! rotor-apiserver's integration tests, one module per concern, built as one test binary (a
//! binary per file linked the crate and its dependencies once each, about 90 MB apiece);
//! nextest still runs every test in its own process.

mod common;

mod allowed_hosts;
mod apply_order;
mod audit;
mod authentication;
mod cel_libraries;
mod create_rules;
mod discovery_follows_crds;
mod duplicate_fields;
mod gc;
mod protobuf;
mod read_defaults;
mod replies;
mod robustness;
mod round_trip;
mod small_divergences;
mod status_subresource;
