//! The swap lifecycle table: every allowed transition, a set of forbidden ones, terminal phases.

use rotor_api::{ClusterSwapStatus, InvalidTransition, Phase, Reason, Time};

use Phase::*;

const HAPPY: [Phase; 10] = [
    Pending,
    Provisioning,
    WaitingForGreen,
    Migrating,
    Verifying,
    ShiftingTraffic,
    Draining,
    Retaining,
    Decommissioning,
    Succeeded,
];

/// The full allowed set, written out by hand from docs/design.md.
fn allowed() -> Vec<(Phase, Phase)> {
    let mut v: Vec<(Phase, Phase)> = HAPPY.windows(2).map(|w| (w[0], w[1])).collect();
    for p in [
        Pending,
        Provisioning,
        WaitingForGreen,
        Migrating,
        Verifying,
        ShiftingTraffic,
        Draining,
        Retaining,
    ] {
        v.push((p, RollingBack));
    }
    v.push((RollingBack, RolledBack));
    for p in Phase::ALL
        .iter()
        .copied()
        .filter(|p| !matches!(p, Succeeded | RolledBack | Failed))
    {
        v.push((p, Failed));
    }
    v
}

#[test]
fn transition_table_is_exactly_the_lifecycle() {
    let allowed = allowed();
    for &from in Phase::ALL {
        for &to in Phase::ALL {
            assert_eq!(
                from.can_transition_to(to),
                allowed.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
    assert_eq!(allowed.len(), 9 + 8 + 1 + 10);
}

#[test]
fn some_forbidden_transitions() {
    for (from, to) in [
        (Provisioning, Pending),        // backwards
        (Pending, Migrating),           // skips
        (ShiftingTraffic, Verifying),   // backwards
        (Decommissioning, RollingBack), // blue is going away
        (Succeeded, RollingBack),       // terminal
        (Succeeded, Failed),            // terminal
        (RolledBack, Pending),          // terminal
        (Failed, RollingBack),          // terminal
        (RollingBack, Succeeded),       // rollback ends in RolledBack
        (Migrating, RolledBack),        // must pass RollingBack
        (Verifying, Verifying),         // no self transitions
    ] {
        assert!(
            !from.can_transition_to(to),
            "{from} -> {to} must be forbidden"
        );
    }
}

#[test]
fn terminal_and_rollback_sets() {
    let terminal: Vec<Phase> = Phase::ALL
        .iter()
        .copied()
        .filter(|p| p.is_terminal())
        .collect();
    assert_eq!(terminal, [Succeeded, RolledBack, Failed]);
    let rollback: Vec<Phase> = Phase::ALL
        .iter()
        .copied()
        .filter(|p| p.allows_rollback())
        .collect();
    assert_eq!(
        rollback,
        [
            Pending,
            Provisioning,
            WaitingForGreen,
            Migrating,
            Verifying,
            ShiftingTraffic,
            Draining,
            Retaining
        ]
    );
    assert_eq!(Phase::default(), Pending);
    assert_eq!(Pending.next(), Some(Provisioning));
    assert_eq!(Succeeded.next(), None);
    assert_eq!(RollingBack.next(), None);
}

fn t(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

#[test]
fn status_transition_records_history_and_times() {
    let mut st = ClusterSwapStatus::default();
    for (i, p) in HAPPY.iter().skip(1).enumerate() {
        st.transition(*p, t(100 + i as i64), Reason::Created, "")
            .unwrap();
    }
    assert_eq!(st.phase, Succeeded);
    assert_eq!(st.history.len(), 9);
    assert_eq!(st.started_at, Some(t(100)));
    assert_eq!(st.finished_at, Some(t(108)));

    let err = st
        .transition(RollingBack, t(200), Reason::RollbackRequested, "too late")
        .unwrap_err();
    assert_eq!(
        err,
        InvalidTransition {
            from: Succeeded,
            to: RollingBack
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid swap phase transition Succeeded -> RollingBack"
    );
    assert_eq!(st.history.len(), 9, "a refused transition changes nothing");
}

#[test]
fn rollback_path_through_status() {
    let mut st = ClusterSwapStatus::default();
    st.transition(Provisioning, t(1), Reason::ProvisioningGreen, "")
        .unwrap();
    st.transition(RollingBack, t(2), Reason::RollbackRequested, "operator")
        .unwrap();
    assert!(st.finished_at.is_none());
    st.transition(RolledBack, t(3), Reason::RolledBack, "")
        .unwrap();
    assert_eq!(st.finished_at, Some(t(3)));
    let phases: Vec<Phase> = st.history.iter().map(|h| h.phase).collect();
    assert_eq!(phases, [Provisioning, RollingBack, RolledBack]);
}
