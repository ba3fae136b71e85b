//! rotor-migration's integration tests, one module per concern, built as one test binary (a
//! binary per file linked the crate and its dependencies once each, about 90 MB apiece);
//! nextest still runs every test in its own process.

mod common;

mod awkward;
mod migrate;
mod ownership;
mod refusals;
mod versions;
