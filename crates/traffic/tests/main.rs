//! rotor-traffic's integration tests, one module per concern, built as one test binary (a binary
//! per file linked the crate and its dependencies once each); nextest still runs every test in its
//! own process.

mod common;

mod clouddns;
mod haproxy;
mod load;
mod route53;
mod sim;
mod trafficmanager;
