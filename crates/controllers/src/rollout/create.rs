//! Which clusters' swaps start now, within `maxConcurrentSwaps` and each wave's `maxConcurrent`,
//! and creating them: one ClusterSwap per cluster, named after the rollout and the cluster and
//! owned by the rollout, so a second create is an AlreadyExists, never a second swap.

use std::collections::{BTreeMap, BTreeSet};

use kube::Resource;
use kube::api::{Api, PostParams};
use rotor_api::{
    ClusterSwap, ClusterSwapSpec, RolloutSpec, SkippedCluster, UnavailablePolicy, WaveStatus,
    labels,
};

use super::count::Tally;
use super::skip::SkipReason;
use super::windows::Availability;
use super::{Reconcile, swap_name};
use crate::Error;

/// Running swaps against the limits.
pub(super) struct Slots {
    /// `spec.maxConcurrentSwaps`.
    max: u32,
    /// Each wave's `maxConcurrent`.
    per_wave: Vec<Option<u32>>,
    /// Running now, in all waves.
    pub(super) running: u32,
    /// Running now, by wave.
    by_wave: Vec<u32>,
}

impl Slots {
    pub(super) fn new(spec: &RolloutSpec, waves: &[WaveStatus], tally: &Tally) -> Self {
        let (running, by_wave) = tally.in_flight(waves);
        Slots {
            max: spec.max_concurrent_swaps,
            per_wave: (0..waves.len())
                .map(|i| spec.waves.get(i).and_then(|w| w.max_concurrent))
                .collect(),
            running,
            by_wave,
        }
    }

    fn full(&self) -> bool {
        self.running >= self.max
    }

    fn wave_full(&self, wave: usize) -> bool {
        self.per_wave[wave].is_some_and(|limit| self.by_wave[wave] >= limit)
    }

    fn take(&mut self, wave: usize) {
        self.running += 1;
        self.by_wave[wave] += 1;
    }
}

/// What became of the candidates.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Starts {
    /// (wave index, cluster) whose swap is created now, in order.
    pub(super) create: Vec<(usize, String)>,
    /// Clusters left out for good: gone, or unavailable under `unavailableClusters: Skip`.
    pub(super) skipped: Vec<SkippedCluster>,
    /// Clusters whose turn came but which cannot start now, and why.
    pub(super) waiting: Vec<String>,
}

/// Goes through `candidates` (wave index, cluster) in order until the slots are full: a cluster
/// that has a swap or is `skipped` is passed over, as is one whose wave is full; the others
/// start, wait or are left out as `availability` and `policy` say.
pub(super) fn pick(
    candidates: impl IntoIterator<Item = (usize, String)>,
    slots: &mut Slots,
    tally: &Tally,
    skipped: &BTreeSet<String>,
    policy: UnavailablePolicy,
    wave_names: &[String],
    availability: impl Fn(&str) -> Availability,
) -> Starts {
    let mut starts = Starts::default();
    for (wave, cluster) in candidates {
        if slots.full() {
            break;
        }
        if tally.phase(&cluster).is_some() || skipped.contains(&cluster) || slots.wave_full(wave) {
            continue;
        }
        match availability(&cluster) {
            Availability::Ready => {
                slots.take(wave);
                starts.create.push((wave, cluster));
            }
            Availability::OutsideWindow => {
                starts
                    .waiting
                    .push(format!("{cluster} (outside its maintenance windows)"));
            }
            Availability::Unavailable { reason, message }
                if reason == SkipReason::NotFound || policy == UnavailablePolicy::Skip =>
            {
                let entry = reason.entry(&cluster, &wave_names[wave], message);
                starts.skipped.push(entry);
            }
            Availability::Unavailable { message, .. } => {
                starts.waiting.push(format!("{cluster} ({message})"));
            }
        }
    }
    starts
}

impl Reconcile<'_> {
    /// Creates the swap of `cluster` in `wave`; one that exists already is fine.
    pub(super) async fn create_swap(&self, wave: &str, cluster: &str) -> Result<(), Error> {
        let name = swap_name(&self.name, cluster);
        let mut swap = ClusterSwap::new(
            &name,
            ClusterSwapSpec {
                cluster_ref: cluster.to_string(),
                target: self.spec.target.clone(),
                strategy: self.spec.strategy.clone(),
                paused: false,
                rollback: false,
                hold_before_traffic: false,
            },
        );
        swap.metadata.labels = Some(BTreeMap::from([
            (labels::ROLLOUT.to_string(), self.name.clone()),
            (labels::WAVE.to_string(), wave.to_string()),
            (labels::CLUSTER.to_string(), cluster.to_string()),
        ]));
        swap.metadata.owner_references = self.rollout.controller_owner_ref(&()).map(|o| vec![o]);
        let api: Api<ClusterSwap> = Api::all(self.ctx.client.clone());
        match api.create(&PostParams::default(), &swap).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let mut created = self.state.created.lock().unwrap_or_else(|p| p.into_inner());
        created.insert(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{set, spec, swap, waves};
    use rotor_api::Phase;

    /// Everyone available but `outside` (outside its window), `stopped` and `gone`.
    fn world(name: &str) -> Availability {
        match name {
            "outside" => Availability::OutsideWindow,
            "stopped" => Availability::Unavailable {
                reason: SkipReason::Stopped,
                message: "stopped".into(),
            },
            "gone" => Availability::Unavailable {
                reason: SkipReason::NotFound,
                message: "gone".into(),
            },
            _ => Availability::Ready,
        }
    }

    fn candidates(waves: &[WaveStatus]) -> Vec<(usize, String)> {
        let each = waves.iter().enumerate();
        each.flat_map(|(i, w)| w.clusters.iter().map(move |c| (i, c.clone())))
            .collect()
    }

    #[test]
    fn swaps_start_up_to_the_limits_in_order() {
        let waves = waves(&[("canary", &["a", "b"]), ("rest", &["c", "d", "e", "f"])]);
        let spec = spec(serde_json::json!({
            "maxConcurrentSwaps": 3,
            "waves": [{"name": "canary", "count": 2, "maxConcurrent": 1}],
        }));
        // a runs: canary is full (1), one slot of three is taken.
        let tally = Tally::new("r", [swap("r", "a", Phase::Migrating)], &set(&[]));
        let mut slots = Slots::new(&spec, &waves, &tally);
        assert_eq!(slots.running, 1);
        let names = vec!["canary".to_string(), "rest".to_string()];
        let policy = UnavailablePolicy::Wait;
        let starts = pick(
            candidates(&waves),
            &mut slots,
            &tally,
            &set(&["c"]),
            policy,
            &names,
            world,
        );
        let create = vec![(1, "d".to_string()), (1, "e".to_string())];
        assert_eq!(
            starts,
            Starts {
                create,
                ..Default::default()
            }
        );
        assert_eq!(slots.running, 3);
    }

    #[test]
    fn unavailable_clusters_wait_or_are_left_out_as_the_policy_says() {
        let waves = waves(&[("all", &["outside", "stopped", "gone", "ok"])]);
        let spec = spec(serde_json::json!({"maxConcurrentSwaps": 10}));
        let tally = Tally::new("r", [], &set(&[]));
        let names = vec!["all".to_string()];
        let run = |policy| {
            let mut slots = Slots::new(&spec, &waves, &tally);
            pick(
                candidates(&waves),
                &mut slots,
                &tally,
                &set(&[]),
                policy,
                &names,
                world,
            )
        };
        let wait = run(UnavailablePolicy::Wait);
        assert_eq!(wait.create, [(0, "ok".to_string())]);
        assert_eq!(
            wait.waiting,
            [
                "outside (outside its maintenance windows)",
                "stopped (stopped)"
            ]
        );
        // A Cluster that is gone is left out whatever the policy.
        assert_eq!(
            wait.skipped,
            [SkipReason::NotFound.entry("gone", "all", "gone".into())]
        );
        let skip = run(UnavailablePolicy::Skip);
        assert_eq!(skip.waiting, ["outside (outside its maintenance windows)"]);
        let reasons: Vec<&str> = skip.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons, ["Stopped", "NotFound"]);
    }
}
