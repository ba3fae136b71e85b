//! What the demo needs of the machine, checked before anything starts: a fleet too large for
//! the open-file limit used to fail midway (member connections refused, swaps rolled back, the
//! rollout paused) with nothing saying why.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Open files per thousand simulated clusters. A cluster's API and its traffic address cost no
/// descriptor of their own (one listener each for the whole simulator); what grows with the
/// fleet is the load's kept-alive connection to each endpoint's frontend, and the members'
/// share of the lanes (HTTP/2, 32 members a connection, both ends in this process). Measured,
/// 1,000 clusters (2026-12-06, release build, HAProxy): 1,652 files at peak over the
/// simulator's provider, 1,730 over the three clouds' fronts.
const FILES_PER_THOUSAND_CLUSTERS: u64 = 1_700;
/// Files that do not grow with the fleet: the store, the listeners, the load's slow requests
/// and streams, HAProxy's connections to the clusters in flight.
const FILES_FIXED: u64 = 1_000;

/// The open files `clusters` need.
pub(super) fn files_needed(clusters: u64) -> u64 {
    FILES_FIXED + (FILES_PER_THOUSAND_CLUSTERS * clusters).div_ceil(1_000)
}

/// Raises the soft open-file limit to what `clusters` need (up to the hard limit), or refuses
/// naming both numbers. Returns the limit in force.
pub(in crate::cmd) fn ensure_open_files(clusters: u64) -> anyhow::Result<u64> {
    let needed = files_needed(clusters);
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let (soft, hard) = (current.unwrap_or(u64::MAX), maximum.unwrap_or(u64::MAX));
    if soft >= needed {
        return Ok(soft);
    }
    anyhow::ensure!(
        hard >= needed,
        "--clusters {clusters} needs about {needed} open files ({FILES_PER_THOUSAND_CLUSTERS} \
         per 1,000 clusters + {FILES_FIXED}); this process may open at most {hard} (hard \
         limit): raise it (`ulimit -n`) or rotate at most {} clusters",
        hard.saturating_sub(FILES_FIXED) * 1_000 / FILES_PER_THOUSAND_CLUSTERS
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
pub(in crate::cmd) fn ensure_memory(clusters: u64) -> anyhow::Result<Option<u64>> {
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
    fn ten_thousand_clusters_fit_this_machines_limit_and_twelve_thousand_do_not() {
        // The machine's hard limit is 20,000 (issue 22); 1,500 clusters once reached it.
        assert!(files_needed(10_000) <= 20_000);
        assert!(files_needed(12_000) > 20_000);
    }
}
