//! The plan: which of blue's objects move, sanitized, in the order green gets them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::select::{self, Stage};
use crate::versions::{BlockedObject, ServedVersions, VersionChoice};
use crate::{Error, MigrationOptions};

/// Lists in flight at once while planning: every kind rotor moves (about 32) in one round, as
/// many as the apply keeps in flight (`MigrationOptions::concurrency`). At eight, a plan took
/// four rounds of round trips, and at 1,000 clusters planning was 40 % of a migration.
const LIST_CONCURRENCY: usize = 32;
/// Objects per list page: bounds the size of one response from a large cluster.
const PAGE: u32 = 500;

/// A served resource type, as discovery reported it in blue (its preferred version).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ResourceRef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// `Kind` for the core group, `Kind.group` otherwise (as in `skipKinds`).
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn from_discovery(ar: &ApiResource, namespaced: bool) -> Self {
        ResourceRef {
            group: ar.group.clone(),
            version: ar.version.clone(),
            kind: ar.kind.clone(),
            plural: ar.plural.clone(),
            namespaced,
        }
    }
}

/// One object to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The sanitized object: the server-side apply body.
    pub body: Value,
    /// Blue's uid, kept only for objects another moving object names as owner: apply maps it
    /// to green's uid to rewrite that ownerReference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uid: Option<String>,
    /// Blue's owners of the object's fields (its `managedFields` but the status subresource's),
    /// which green's copy gets too ([`crate::ownership`]). Empty: blue recorded none, and green's
    /// copy has none either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<Value>,
}

impl PlannedObject {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The objects of one resource type within a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub resource: ResourceRef,
    pub objects: Vec<PlannedObject>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePlan {
    pub stage: Stage,
    pub resources: Vec<ResourcePlan>,
}

impl StagePlan {
    pub fn len(&self) -> usize {
        self.resources.iter().map(|r| r.objects.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What moves, in order, and what stays behind and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Non-empty stages, in [`Stage`] order.
    pub stages: Vec<StagePlan>,
    /// Objects left behind, counted by `Kind: reason`.
    pub skipped: BTreeMap<String, u64>,
    /// Objects whose ownership cannot be carried as blue has it, counted by `Kind: reason`
    /// (no managed fields recorded, unreadable entries dropped).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ownership: BTreeMap<String, u64>,
    /// Served kinds not even listed: not migrated by rotor, skipped by policy, or not writable.
    pub kinds_left: Vec<String>,
    /// PVC-backed workloads that move anyway (`allow_stateful`): their data does not.
    pub stateful: Vec<String>,
    /// Blue's Kubernetes minor version (`/version`), when it said: the release whose schemas
    /// a conversion is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_minor: Option<u32>,
    /// Planned against green ([`plan_for`]): per resource type, the version read and written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<KindVersions>,
    /// Planned against green: the objects green cannot take. [`crate::apply`] refuses the plan
    /// while any is here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<BlockedObject>,
    /// Planned against a target release: the objects its validation refuses, found by
    /// rehearsing the plan on a scratch server of that release ([`crate::rehearse`]).
    /// [`crate::apply`] refuses the plan while any is here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<crate::ObjectError>,
}

/// The pre-flight of one resource type: how its objects reach green.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindVersions {
    /// `Kind.group`.
    pub kind: String,
    pub group: String,
    /// Objects of this type in the plan.
    pub objects: usize,
    /// Versions blue serves, preferred first.
    pub blue_versions: Vec<String>,
    /// Versions green serves (or will, for a CRD that moves), preferred first.
    pub green_versions: Vec<String>,
    #[serde(flatten)]
    pub choice: VersionChoice,
}

impl Plan {
    pub fn total(&self) -> usize {
        self.stages.iter().map(StagePlan::len).sum()
    }

    /// Every object with its stage and resource, in apply order.
    pub fn objects(&self) -> impl Iterator<Item = (Stage, &ResourceRef, &PlannedObject)> {
        self.stages.iter().flat_map(|s| {
            s.resources
                .iter()
                .flat_map(move |r| r.objects.iter().map(move |o| (s.stage, &r.resource, o)))
        })
    }

    /// The pre-flight: one row per resource type with objects, `KIND OBJECTS STATUS DETAIL`,
    /// then every blocked object.
    pub fn versions_table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .versions
            .iter()
            .filter(|v| v.objects > 0)
            .map(|v| {
                let (status, detail) = match &v.choice {
                    VersionChoice::Ok { version } => ("ok", version.clone()),
                    VersionChoice::Convert { from, to } => ("convert", format!("{from} → {to}")),
                    VersionChoice::Blocked { version, reason } => {
                        ("blocked", format!("{version}: {reason}"))
                    }
                };
                [v.kind.clone(), v.objects.to_string(), status.into(), detail]
            })
            .collect();
        let mut out = table(["KIND", "OBJECTS", "STATUS", "DETAIL"], &rows);
        for b in &self.blocked {
            let _ = writeln!(out, "blocked: {b}");
        }
        out
    }

    /// One row per object: `STAGE KIND NAMESPACE NAME`.
    pub fn objects_table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .objects()
            .map(|(stage, r, o)| {
                [
                    stage.to_string(),
                    r.kind_group(),
                    o.namespace.clone().unwrap_or_default(),
                    o.name.clone(),
                ]
            })
            .collect();
        table(["STAGE", "KIND", "NAMESPACE", "NAME"], &rows)
    }
}

/// A summary: one row per stage and kind, then what stays behind.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: Vec<[String; 3]> = self
            .stages
            .iter()
            .flat_map(|s| {
                s.resources.iter().map(move |r| {
                    [
                        s.stage.to_string(),
                        r.resource.kind_group(),
                        r.objects.len().to_string(),
                    ]
                })
            })
            .collect();
        f.write_str(&table(["STAGE", "KIND", "OBJECTS"], &rows))?;
        writeln!(
            f,
            "{} objects in {} stages",
            self.total(),
            self.stages.len()
        )?;
        for (why, n) in &self.skipped {
            writeln!(f, "left behind: {n} × {why}")?;
        }
        for (why, n) in &self.ownership {
            writeln!(f, "ownership: {n} × {why}")?;
        }
        if !self.kinds_left.is_empty() {
            writeln!(f, "kinds not migrated: {}", self.kinds_left.join(", "))?;
        }
        for s in &self.stateful {
            writeln!(f, "stateful, data not copied: {s}")?;
        }
        for v in self.versions.iter().filter(|v| v.objects > 0) {
            if let VersionChoice::Convert { from, to } = &v.choice {
                writeln!(f, "converted: {} × {} {from} → {to}", v.objects, v.kind)?;
            }
        }
        for b in &self.blocked {
            writeln!(f, "blocked: {b}")?;
        }
        for r in &self.refused {
            writeln!(f, "refused: {r}")?;
        }
        Ok(())
    }
}

fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(widths).enumerate() {
            if i + 1 == N {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}   ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn blue_err(what: impl Into<String>, e: &kube::Error) -> Error {
    Error::Blue {
        what: what.into(),
        message: crate::api_message(e),
    }
}

/// Versions of each (group, kind) blue serves, preferred first.
type BlueVersions = BTreeMap<(String, String), Vec<String>>;

/// Blue's served, listable and patchable resources at their preferred versions, and every
/// version of each; aggregated discovery when the server has it (2 requests instead of one per
/// group).
async fn discover(blue: &Client) -> Result<(Vec<ResourceRef>, BlueVersions), Error> {
    let discovery = match Discovery::new(blue.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(_) => Discovery::new(blue.clone())
            .run()
            .await
            .map_err(|e| blue_err("discovering blue's API resources", &e))?,
    };
    let mut out = Vec::new();
    let mut versions = BlueVersions::new();
    for group in discovery.groups() {
        let mut order: Vec<&str> = group.preferred_version().into_iter().collect();
        order.extend(
            group
                .versions()
                .filter(|v| Some(*v) != group.preferred_version()),
        );
        for v in order {
            for (ar, caps) in group.versioned_resources(v) {
                if caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::PATCH) {
                    versions
                        .entry((ar.group.clone(), ar.kind.clone()))
                        .or_default()
                        .push(ar.version.clone());
                }
            }
        }
        for (ar, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::PATCH) {
                out.push(ResourceRef::from_discovery(
                    &ar,
                    caps.scope == Scope::Namespaced,
                ));
            }
        }
    }
    out.sort();
    Ok((out, versions))
}

/// Every object of a resource type, page by page. None when the type is not served (it vanished
/// since discovery, or green does not have it).
pub(crate) async fn list_all(
    client: &Client,
    res: &ResourceRef,
) -> Result<Option<Vec<DynamicObject>>, kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &res.api_resource());
    let mut items = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        let page = match api.list(&lp).await {
            Ok(p) => p,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => return Ok(None),
            Err(e) => return Err(e),
        };
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(Some(items)),
        }
    }
}

async fn list_blue(blue: &Client, res: &ResourceRef) -> Result<Option<Vec<DynamicObject>>, Error> {
    list_all(blue, res)
        .await
        .map_err(|e| blue_err(format!("listing {} in blue", res.plural), &e))
}

/// A selected object before sanitizing.
struct Candidate {
    stage: Stage,
    res: usize,
    obj: DynamicObject,
}

/// Discovers blue's resources, selects the objects `options` ask for, sanitizes and orders them.
/// Each kind is read at blue's preferred version; [`crate::apply`] checks them against green.
/// Refuses ([`Error::Stateful`]) when a moving workload keeps data in persistent volumes and
/// `allow_stateful` is off.
pub async fn plan(blue: &Client, options: &MigrationOptions) -> Result<Plan, Error> {
    plan_inner(blue, None, options).await
}

/// [`plan`] against what green serves (its discovery, or the OpenAPI data of the release it will
/// run): each kind is read at a version green serves, or at one that converts losslessly to
/// one, and [`Plan::versions`] and [`Plan::blocked`] say which (the pre-flight).
pub async fn plan_for(
    blue: &Client,
    green: &ServedVersions,
    options: &MigrationOptions,
) -> Result<Plan, Error> {
    plan_inner(blue, Some(green), options).await
}

async fn plan_inner(
    blue: &Client,
    green: Option<&ServedVersions>,
    options: &MigrationOptions,
) -> Result<Plan, Error> {
    let mut out = Plan::default();
    let (served, blue_versions) = discover(blue).await?;
    out.source_minor = blue
        .apiserver_version()
        .await
        .ok()
        .filter(|i| i.major == "1")
        .and_then(|i| i.minor.trim_end_matches('+').parse().ok());
    let blue_crds: Vec<Value> = {
        let crds = served
            .iter()
            .find(|r| r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition");
        match crds {
            Some(r) => list_blue(blue, r)
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.data)
                .collect(),
            None => Vec::new(),
        }
    };
    let custom_groups: HashSet<String> = blue_crds
        .iter()
        .filter_map(|c| c.pointer("/spec/group").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    // Green serves a custom kind at its CRD's versions once the CRD has moved (CRDs go first,
    // and a CRD moves whenever one of its objects does).
    let green = green.map(|g| {
        let mut g = g.clone();
        for (group, kind, versions) in crate::versions::crd_versions(blue_crds.iter()) {
            g.add(&group, &kind, &versions);
        }
        g
    });
    let webhook_storage = crate::versions::webhook_storage_versions(blue_crds.iter());
    let mut blue_versions = blue_versions;
    let mut resources: Vec<(ResourceRef, Stage)> = Vec::new();
    let mut choices: Vec<Option<VersionChoice>> = Vec::new();
    for mut r in served {
        // A kind converted by a webhook is read and written at its storage version, so neither
        // cluster's webhook is called (green's is not even running while its objects move).
        let key = (r.group.clone(), r.kind.clone());
        if let Some(storage) = webhook_storage.get(&key) {
            r.version = storage.clone();
            if let Some(list) = blue_versions.get_mut(&key) {
                list.retain(|v| v != storage);
                list.insert(0, storage.clone());
            }
        }
        let stage = if custom_groups.contains(&r.group) {
            Some(Stage::CustomResources)
        } else {
            select::builtin_stage(&r.group, &r.kind)
        };
        match stage {
            _ if options.policy.skips_kind(&r.kind, &r.group) => {
                out.kinds_left.push(format!("{} (policy)", r.kind_group()))
            }
            Some(stage) => {
                let choice = green.as_ref().map(|g| {
                    let key = (r.group.clone(), r.kind.clone());
                    let versions = blue_versions.get(&key).cloned().unwrap_or_default();
                    crate::versions::choose(&r.group, &r.kind, &versions, out.source_minor, g)
                });
                if let Some(c) = &choice {
                    r.version = c.read_version().to_string();
                }
                resources.push((r, stage));
                choices.push(choice);
            }
            None => out.kinds_left.push(r.kind_group()),
        }
    }
    out.kinds_left.sort();
    out.kinds_left.dedup();

    let lists: Vec<(usize, Option<Vec<DynamicObject>>)> =
        // Indexed, not iterated by reference: see apply's note on Send and borrowed pairs.
        futures::stream::iter(0..resources.len())
            .map(|i| {
                let r = &resources[i].0;
                async move { list_blue(blue, r).await.map(|l| (i, l)) }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect()
            .await?;

    // Select: every object on its own rules; CRDs and namespaces are settled below.
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut unlabelled_crds: Vec<Candidate> = Vec::new();
    for (i, items) in lists {
        let (res, stage) = &resources[i];
        for obj in items.into_iter().flatten() {
            let why = select::exclusion(&obj, &res.group, &res.kind, res.namespaced, options);
            match why {
                None => candidates.push(Candidate {
                    stage: *stage,
                    res: i,
                    obj,
                }),
                Some("labels not selected") if *stage == Stage::Crds => {
                    unlabelled_crds.push(Candidate {
                        stage: *stage,
                        res: i,
                        obj,
                    })
                }
                Some(why) => out.skip(&res.kind, why),
            }
        }
    }
    // A CRD moves when its labels are selected or a moving object needs it.
    let needed_crds: HashSet<String> = candidates
        .iter()
        .filter(|c| c.stage == Stage::CustomResources)
        .map(|c| {
            let r = &resources[c.res].0;
            format!("{}.{}", r.plural, r.group)
        })
        .collect();
    for c in unlabelled_crds {
        if needed_crds.contains(&c.obj.name_any()) {
            candidates.push(c);
        } else {
            out.skip("CustomResourceDefinition", "labels not selected");
        }
    }
    // A namespaced object moves only with its namespace (`default` is everywhere).
    let moving_namespaces: HashSet<String> = candidates
        .iter()
        .filter(|c| c.stage == Stage::Namespaces)
        .map(|c| c.obj.name_any())
        .chain(["default".to_string()])
        .collect();
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        let res = &resources[c.res].0;
        match &c.obj.metadata.namespace {
            Some(ns) if res.namespaced && !moving_namespaces.contains(ns) => {
                out.skip(&res.kind, "its namespace does not move")
            }
            _ => kept.push(c),
        }
    }
    let candidates = kept;

    // Stateful workloads: refused unless their data is declared disposable.
    for c in candidates.iter().filter(|c| c.stage == Stage::Workloads) {
        let res = &resources[c.res].0;
        if let Some(why) = select::stateful_reason(&res.group, &res.kind, &c.obj.data) {
            let ns = c.obj.namespace().unwrap_or_default();
            out.stateful
                .push(format!("{} {ns}/{} ({why})", res.kind, c.obj.name_any()));
        }
    }
    out.stateful.sort();
    if !out.stateful.is_empty() && !options.allow_stateful {
        return Err(Error::Stateful {
            workloads: std::mem::take(&mut out.stateful),
        });
    }

    // ownerReferences survive only towards moving owners (green's uid is filled in at apply).
    let moving_uids: HashSet<&str> = candidates
        .iter()
        .filter_map(|c| c.obj.metadata.uid.as_deref())
        .collect();
    let mut owners_needed: HashSet<String> = HashSet::new();
    let mut staged: BTreeMap<(Stage, usize), Vec<PlannedObject>> = BTreeMap::new();
    for c in &candidates {
        let res = &resources[c.res].0;
        let keep = |o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference| {
            moving_uids.contains(o.uid.as_str())
        };
        let body = crate::sanitize(&c.obj, &res.api_version(), &res.kind, &keep);
        let owned = body.pointer("/metadata/ownerReferences").is_some();
        if owned {
            for o in c.obj.owner_references().iter().filter(|o| keep(o)) {
                owners_needed.insert(o.uid.clone());
            }
        }
        let stage = if owned { Stage::Owned } else { c.stage };
        let (managed_fields, broken) = crate::ownership::carried(&c.obj);
        if broken > 0 {
            out.note_ownership(&res.kind, "unreadable managedFields entries dropped");
        }
        if managed_fields.is_empty() {
            out.note_ownership(&res.kind, "no managed fields in blue, none in green either");
        }
        staged
            .entry((stage, c.res))
            .or_default()
            .push(PlannedObject {
                namespace: c.obj.metadata.namespace.clone(),
                name: c.obj.name_any(),
                body,
                source_uid: c.obj.metadata.uid.clone(),
                managed_fields,
            });
    }
    let mut counts = vec![0usize; resources.len()];
    for ((_, res), objects) in &staged {
        counts[*res] += objects.len();
        if let Some(VersionChoice::Blocked { reason, .. }) = &choices[*res] {
            let r = &resources[*res].0;
            for o in objects {
                out.blocked.push(BlockedObject {
                    kind: r.kind.clone(),
                    namespace: o.namespace.clone(),
                    name: o.name.clone(),
                    api_version: r.api_version(),
                    target: green.as_ref().map(|g| g.target()).unwrap_or_default(),
                    reason: reason.clone(),
                });
            }
        }
    }
    if let Some(g) = &green {
        for (i, choice) in choices.iter().enumerate() {
            let (r, _) = &resources[i];
            if let Some(choice) = choice {
                out.versions.push(KindVersions {
                    kind: r.kind_group(),
                    group: r.group.clone(),
                    objects: counts[i],
                    blue_versions: blue_versions
                        .get(&(r.group.clone(), r.kind.clone()))
                        .cloned()
                        .unwrap_or_default(),
                    green_versions: g.versions(&r.group, &r.kind).to_vec(),
                    choice: choice.clone(),
                });
            }
        }
    }
    for ((stage, res), mut objects) in staged {
        for o in &mut objects {
            if o.source_uid
                .as_ref()
                .is_some_and(|u| !owners_needed.contains(u))
            {
                o.source_uid = None;
            }
        }
        objects.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let rp = ResourcePlan {
            resource: resources[res].0.clone(),
            objects,
        };
        match out.stages.last_mut() {
            Some(s) if s.stage == stage => s.resources.push(rp),
            _ => out.stages.push(StagePlan {
                stage,
                resources: vec![rp],
            }),
        }
    }
    if let Some(minor) = green.as_ref().and_then(|g| g.minor) {
        let writes = conversions(&resources, &choices);
        let rehearsal = crate::rehearse::rehearse(&out, minor, &writes)
            .await
            .map_err(|message| Error::Green {
                what: "rehearsing the plan".into(),
                message,
            })?;
        out.refused = rehearsal.refused;
    }
    Ok(out)
}

/// Where each converted resource type is written (the others at their own version).
fn conversions(
    resources: &[(ResourceRef, Stage)],
    choices: &[Option<VersionChoice>],
) -> HashMap<ResourceRef, ResourceRef> {
    resources
        .iter()
        .zip(choices)
        .filter_map(|((r, _), c)| match c {
            Some(VersionChoice::Convert { to, .. }) => Some((
                r.clone(),
                ResourceRef {
                    version: to.clone(),
                    ..r.clone()
                },
            )),
            _ => None,
        })
        .collect()
}

impl Plan {
    fn skip(&mut self, kind: &str, why: &str) {
        *self.skipped.entry(format!("{kind}: {why}")).or_default() += 1;
    }

    fn note_ownership(&mut self, kind: &str, why: &str) {
        *self.ownership.entry(format!("{kind}: {why}")).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            ["A", "B"],
            &[["x".into(), "1".into()], ["long".into(), "2".into()]],
        );
        assert_eq!(t, "A      B\nx      1\nlong   2\n");
    }
}
