//! Where a managed cluster is: ARM addresses it by subscription, resource group and name, but
//! [`crate::Provider`]'s reads and deletes name only the placement and the instance. The group
//! comes from the create (`spec.config.resourceGroup`) and is remembered; after a restart the
//! subscription's cluster list finds it by name and location. The memory is a cache with a
//! bound, never the truth: what ARM says is.

use std::collections::HashMap;
use std::sync::Mutex;

use rotor_azure::Url;

use crate::Placement;

/// Clusters remembered at most; past it the memory starts afresh (the list finds them again).
const REMEMBERED: usize = 4096;

/// What rotor remembers of one cluster.
#[derive(Clone, Debug, Default)]
pub(super) struct Memo {
    pub group: String,
    /// The last long-running operation ARM answered for it (`Azure-AsyncOperation`): where a
    /// failure's words are read.
    pub operation: Option<Url>,
}

/// Per (placement, instance name).
#[derive(Default)]
pub(super) struct Memory(Mutex<HashMap<(Placement, String), Memo>>);

impl Memory {
    pub fn get(&self, at: &Placement, name: &str) -> Option<Memo> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(at.clone(), name.to_string())).cloned()
    }

    /// Records the group (and the operation, when one was answered).
    pub fn remember(&self, at: &Placement, name: &str, group: &str, operation: Option<Url>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= REMEMBERED {
            map.clear();
        }
        let memo = map.entry((at.clone(), name.to_string())).or_default();
        memo.group = group.to_string();
        if operation.is_some() {
            memo.operation = operation;
        }
    }

    pub fn forget(&self, at: &Placement, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(at.clone(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keeps_the_last_operation_and_is_bounded() {
        let m = Memory::default();
        let at = Placement {
            account: "s".into(),
            region: "westeurope".into(),
        };
        let op = Url::parse("https://management.azure.com/x").unwrap();
        m.remember(&at, "a", "rg", Some(op.clone()));
        m.remember(&at, "a", "rg", None);
        assert_eq!(m.get(&at, "a").unwrap().operation, Some(op));
        for i in 0..REMEMBERED + 1 {
            m.remember(&at, &format!("c{i}"), "rg", None);
        }
        assert!(m.0.lock().unwrap().len() <= REMEMBERED);
        m.forget(&at, &format!("c{REMEMBERED}"));
        assert!(m.get(&at, &format!("c{REMEMBERED}")).is_none());
    }
}
