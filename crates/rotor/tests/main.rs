//! rotor's integration tests, one module per concern, built as one test binary: 41 binaries
//! each linking the whole workspace took about 300 MB of disk apiece (a clean CI ran out of
//! space) and a link each; nextest still runs every test in its own process.
#![recursion_limit = "256"]

mod common;

mod audit;
mod auth;
mod aws;
mod azure;
mod bad_objects;
mod clouds;
mod clouds_dns_gates;
mod containerfile;
mod controllers_mode;
mod crash;
mod dashboard;
mod dashboard_actions;
mod dashboard_rollback;
mod dashboard_timeline;
mod defaulting;
mod discovery;
mod discovery_resync;
mod etcd_tls;
mod gcp;
mod grafana;
mod ha;
mod helm_chart;
mod helm_workloads;
mod hooks;
mod issuer_discovery;
mod job_hooks;
mod kube_api;
mod kubectl;
mod kubectl_cascade;
mod kubectl_create;
mod kubectl_cronjob;
mod kubectl_defaults;
mod kubectl_dry_run_plan;
mod kubectl_explain;
mod kubectl_openapi;
mod kubectl_printing;
mod kubectl_small_divergences;
mod kubectl_workloads;
mod lifecycle;
mod metric_gates;
mod migrate_cli;
mod migrate_owners;
mod oidc;
mod rbac;
mod read_versions;
mod rollout;
mod rollout_retry;
mod schema_cel;
mod schema_validation;
mod schema_validation_kubectl;
mod secrets_hygiene;
mod service_accounts;
mod sim;
mod swap;
mod swap_delete;
mod swap_discovery;
mod swap_faults;
mod traffic_restart;
mod validation;
mod wave_gates;
