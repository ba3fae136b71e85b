//! A Kubernetes-compatible API server over pluggable storage ([`rotor_store`]): discovery, CRUD,
//! the four patch types, watch, CRDs. rotor's control plane and every simulated member cluster
//! are instances of it; kubectl and kube-rs talk to it unchanged.

pub mod audit;
pub mod auth;
pub mod authz;
mod conversion;
mod cursor;
mod discovery;
pub mod error;
pub mod http;
pub mod object;
mod protobuf;
pub mod registry;
pub mod request;
pub mod selector;
mod server;
mod table;
pub mod tls;
pub mod validation;
mod watch;

pub use error::{ApiError, ApiResult};
pub use registry::{Registry, Resource};
pub use server::{
    ApiServer, DryRunHook, FieldValidation, ListOptions, PatchType, ServerConfig, TokenReview,
    WriteOptions, Written,
};
