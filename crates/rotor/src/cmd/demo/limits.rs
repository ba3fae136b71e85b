//! What the demo needs of the machine, checked before anything starts: a fleet too large for
//! the open-file limit used to fail midway (member connections refused, swaps rolled back, the
//! rollout paused) with nothing saying why.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Open files per simulated cluster (its API listener, its traffic listener, discovery's and
/// the controllers' connections to it, both ends in this process, HAProxy's frontend), from
/// the 1,000-cluster demo: 14.1 with HAProxy, 15.5 with the embedded router (2026-12-05).
const FILES_PER_CLUSTER: u64 = 16;
/// Files that do not grow with the fleet: the store, the control plane's API, the load's
/// connections and slow requests (about 2,100 at 100 clusters).
const FILES_FIXED: u64 = 2_500;

/// The open files `clusters` need.
pub(super) fn files_needed(clusters: u64) -> u64 {
    FILES_FIXED + FILES_PER_CLUSTER * clusters
}

/// Raises the soft open-file limit to what `clusters` need (up to the hard limit), or refuses
/// naming both numbers. Returns the limit in force.
pub(super) fn ensure_open_files(clusters: u64) -> anyhow::Result<u64> {
    let needed = files_needed(clusters);
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let (soft, hard) = (current.unwrap_or(u64::MAX), maximum.unwrap_or(u64::MAX));
    if soft >= needed {
        return Ok(soft);
    }
    anyhow::ensure!(
        hard >= needed,
        "--clusters {clusters} needs about {needed} open files ({FILES_PER_CLUSTER} per cluster \
         + {FILES_FIXED}); this process may open at most {hard} (hard limit): raise it \
         (`ulimit -n`) or rotate at most {} clusters",
        hard.saturating_sub(FILES_FIXED) / FILES_PER_CLUSTER
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum,
        },
    )
    .map_err(|e| anyhow::anyhow!("raising the open-file limit to {needed}: {e}"))?;
    Ok(needed)
}

/// Resident memory per simulated cluster, MiB: its API server and store, discovery's and the
/// rollout's state of it, its traffic (see the README's scale figures).
const MIB_PER_CLUSTER: u64 = 1;
/// Resident memory that does not grow with the fleet, MiB.
const MIB_FIXED: u64 = 400;

/// The memory `clusters` need, MiB.
pub(super) fn memory_needed_mib(clusters: u64) -> u64 {
    MIB_FIXED + MIB_PER_CLUSTER * clusters
}

/// Refuses a fleet the machine's available memory cannot hold, naming both numbers, rather
/// than swapping or being killed midway. Returns the memory available (MiB) when known.
pub(super) fn ensure_memory(clusters: u64) -> anyhow::Result<Option<u64>> {
    let available = mem_available_mib();
    if let Some(available) = available {
        memory_verdict(clusters, available).map_err(anyhow::Error::msg)?;
    }
    Ok(available)
}

fn memory_verdict(clusters: u64, available_mib: u64) -> Result<(), String> {
    let needed = memory_needed_mib(clusters);
    if available_mib >= needed {
        return Ok(());
    }
    Err(format!(
        "--clusters {clusters} needs about {needed} MiB of memory ({MIB_PER_CLUSTER} MiB per \
         cluster + {MIB_FIXED}); {available_mib} MiB is available (MemAvailable): free some or \
         rotate at most {} clusters",
        available_mib.saturating_sub(MIB_FIXED) / MIB_PER_CLUSTER
    ))
}

/// `MemAvailable` of /proc/meminfo, MiB; None where there is none (not Linux).
fn mem_available_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_larger_than_the_available_memory_is_refused_naming_both_numbers() {
        assert_eq!(memory_verdict(1_000, 24 * 1024), Ok(()));
        let refused = memory_verdict(10_000, 2_048).expect_err("refused");
        assert!(
            refused.contains(&format!("needs about {} MiB", memory_needed_mib(10_000)))
                && refused.contains("2048 MiB is available"),
            "{refused}"
        );
    }

    #[test]
    fn a_thousand_clusters_fit_this_machines_limit_and_fifteen_hundred_do_not() {
        // The machine's hard limit is 20,000 (issue 22): 1,500 clusters reached it.
        assert!(files_needed(1_000) <= 20_000);
        assert!(files_needed(1_500) > 20_000);
    }
}
