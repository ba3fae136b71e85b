//! How busy the machine was while the rollout ran: the demo runs the control plane, every
//! simulated cluster, the load and HAProxy on the same cores, so its `wall_over_configured`
//! says as much about the machine as about rotor. Linux's `/proc/stat`; elsewhere nothing.

/// The machine's CPU time counters (ticks, all cores) at one moment.
#[derive(Clone, Copy, Debug)]
pub(super) struct CpuSample {
    busy: u64,
    total: u64,
    cores: usize,
}

impl CpuSample {
    pub(super) fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The `cpu` line: user nice system idle iowait irq softirq steal …; idle and iowait are
    /// the idle ticks, guest time is already inside user.
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = ticks.iter().sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        Some(Self {
            busy: total - idle,
            total,
            cores,
        })
    }

    /// The share of all cores' time spent busy between `self` and `later` (0 to 1).
    pub(super) fn busy_until(&self, later: &CpuSample) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|t| *t > 0)?;
        let busy = later.busy.checked_sub(self.busy)?;
        Some(busy as f64 / total as f64)
    }

    pub(super) fn cores(&self) -> usize {
        self.cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_is_non_idle_ticks_over_all_ticks() {
        let before = CpuSample::parse(
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n\
             cpu1 50 0 25 400 25 0 0 0 0 0\nintr 1",
        )
        .unwrap();
        let after = CpuSample::parse("cpu  250 0 100 850 50 0 0 0 0 0\ncpu0 x\ncpu1 x\n").unwrap();
        assert_eq!(before.cores(), 2);
        // 200 busy ticks and 50 idle ones.
        assert_eq!(before.busy_until(&after), Some(0.8));
        assert_eq!(after.busy_until(&before), None);
        assert!(CpuSample::parse("intr 1").is_none());
    }
}
