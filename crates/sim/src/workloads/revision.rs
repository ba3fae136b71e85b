//! Deployment revisions as kube-controller-manager numbers them: the annotation
//! `deployment.kubernetes.io/revision` on each ReplicaSet; a new template gets the highest
//! revision + 1, and an old ReplicaSet whose template comes back (`kubectl rollout undo`) is
//! reused and renumbered the same way. Old ReplicaSets beyond `revisionHistoryLimit` go.

use serde_json::Value;

pub const ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A ReplicaSet's revision (0 when it has none).
pub fn of(rs: &Value) -> u64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The revision the ReplicaSet at `current` (None: not created yet) must carry.
pub fn next(all: &[Value], current: Option<usize>) -> u64 {
    let max = all.iter().map(of).max().unwrap_or(0);
    match current {
        Some(i) if of(&all[i]) == max && max > 0 => max,
        _ => max + 1,
    }
}

/// Indices into `old` of the idle old ReplicaSets beyond `limit`, oldest revision first.
pub fn beyond_history(old: &[Value], limit: usize) -> Vec<usize> {
    let idle = |rs: &Value| {
        super::int(rs, "/spec/replicas", 1) == 0 && super::int(rs, "/status/replicas", 0) == 0
    };
    let mut candidates: Vec<usize> = (0..old.len()).filter(|&i| idle(&old[i])).collect();
    candidates.sort_by_key(|&i| of(&old[i]));
    let excess = candidates.len().saturating_sub(limit);
    candidates.truncate(excess);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(revision: u64, replicas: i64) -> Value {
        json!({"metadata": {"annotations": {ANNOTATION: revision.to_string()}},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
    }

    #[test]
    fn a_new_template_gets_the_next_revision() {
        assert_eq!(next(&[], None), 1);
        assert_eq!(next(&[rs(1, 0), rs(2, 2)], None), 3);
    }

    #[test]
    fn the_current_replica_set_keeps_its_revision() {
        assert_eq!(next(&[rs(1, 0), rs(2, 2)], Some(1)), 2);
    }

    #[test]
    fn an_old_template_coming_back_is_renumbered() {
        // `kubectl rollout undo`: revision 1's template is the Deployment's again.
        assert_eq!(next(&[rs(1, 0), rs(2, 2)], Some(0)), 3);
    }

    #[test]
    fn a_replica_set_without_revision_gets_one() {
        let bare = json!({"metadata": {}});
        assert_eq!(next(&[bare], Some(0)), 1);
    }

    #[test]
    fn history_keeps_the_newest_idle_replica_sets() {
        let old = vec![rs(3, 0), rs(1, 0), rs(4, 1), rs(2, 0)];
        // Idle: revisions 3, 1, 2; with a limit of 1 the two oldest (1, 2) go.
        assert_eq!(beyond_history(&old, 1), vec![1, 3]);
        assert!(beyond_history(&old, 10).is_empty());
        assert_eq!(beyond_history(&old, 0), vec![1, 3, 0]);
    }
}
