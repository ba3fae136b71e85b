//! The Job kind of lifecycle hook: a Kubernetes Job run in green (or blue) from a template; its
//! `Complete` condition allows, its `Failed` condition denies. The template is kept as JSON (the
//! schema preserves it) and checked here as a `batch/v1` JobTemplateSpec, so a template that
//! does not parse is refused naming its field rather than making the swap unreadable.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::HookPoint;
use crate::validation::Errors;

/// Upper bound on a Job hook's `timeoutSeconds` (also in the schema): the reconcile does not
/// wait for the Job, so it may run far longer than a webhook call.
pub const MAX_JOB_TIMEOUT_SECONDS: u32 = 3600;
/// A Job hook's timeout when none is set.
pub const DEFAULT_JOB_TIMEOUT_SECONDS: u32 = 600;

closed_enum! {
    /// Which of the swap's two instances runs a Job hook.
    #[derive(Default)]
    pub enum HookCluster {
        /// The new instance (it exists from `AfterMigration` on).
        #[default]
        Green = "Green",
        /// The instance serving before the swap.
        Blue = "Blue",
    }
}

fn default_namespace() -> String {
    "default".into()
}

/// A Job run as a hook.
///
/// ```yaml
/// job:
///   cluster: Green
///   namespace: shop
///   template:
///     spec:
///       backoffLimit: 1
///       template:
///         spec:
///           restartPolicy: Never
///           containers: [{name: smoke, image: example.com/smoke:1}]
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobHook {
    /// Which instance the Job runs in.
    #[serde(default)]
    pub cluster: HookCluster,
    /// The namespace the Job is created in (it must exist there).
    #[serde(default = "default_namespace")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// A `batch/v1` JobTemplateSpec (`metadata` and `spec`, as a CronJob's `jobTemplate`). The
    /// Job's name is rotor's, derived from the swap, the hook and the point, so a restarted
    /// controller finds the same Job.
    #[schemars(schema_with = "preserved_object")]
    pub template: Value,
}

/// An object the schema keeps as written (the member cluster's API validates it whole).
fn preserved_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

impl JobHook {
    /// The template as a JobTemplateSpec; an error says why it is not one.
    pub fn job_template(&self) -> Result<JobTemplateSpec, String> {
        serde_json::from_value(self.template.clone()).map_err(|e| e.to_string())
    }

    pub(crate) fn validate_at(&self, path: &str, point: HookPoint, errs: &mut Errors) {
        let no_green = matches!(
            point,
            HookPoint::BeforeProvisioning | HookPoint::AfterRollback
        );
        if self.cluster == HookCluster::Green && no_green {
            errs.invalid(
                format!("{path}.cluster"),
                format!("there is no green to run a Job in at {point}: use Blue"),
            );
        }
        errs.dns_label(&format!("{path}.namespace"), &self.namespace);
        let field = format!("{path}.template");
        let template = match self.job_template() {
            Ok(t) => t,
            Err(e) => {
                errs.invalid(field, format!("not a batch/v1 JobTemplateSpec: {e}"));
                return;
            }
        };
        let containers = template
            .spec
            .and_then(|s| s.template.spec)
            .map_or(0, |p| p.containers.len());
        if containers == 0 {
            errs.required(
                format!("{field}.spec.template.spec.containers"),
                "a Job hook runs at least one container",
            );
        }
    }
}
