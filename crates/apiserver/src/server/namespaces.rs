//! The namespace controller: a terminating namespace's contents are deleted (objects with
//! finalizers are waited for), then the namespace itself.

use std::sync::Arc;
use std::time::Duration;

use rotor_store::StoreError;
use serde_json::Value;

use super::*;
use crate::error::ApiResult;
use crate::object::{self};

impl ApiServer {
    /// The namespace controller: deletes everything in a terminating namespace, then the
    /// namespace itself. Objects with finalizers are waited for, with a bounded backoff.
    pub(super) fn spawn_namespace_cleanup(self: &Arc<Self>, namespace: String) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(20);
            loop {
                match server.sweep_namespace(&namespace).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(namespace, error = %e, "namespace cleanup"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// One pass of namespace cleanup; true when the namespace is gone.
    async fn sweep_namespace(self: &Arc<Self>, namespace: &str) -> ApiResult<bool> {
        let namespaces = self.resource("", "v1", "namespaces")?;
        let Ok((ns_obj, ns_rev)) = self.get_kv(&namespaces, None, namespace).await else {
            return Ok(true);
        };
        if !object::is_deleting(&ns_obj) {
            return Ok(true);
        }
        let mut remaining = 0usize;
        let mut seen_prefixes = std::collections::HashSet::new();
        for res in self.registry.all().into_iter().filter(|r| r.namespaced) {
            let prefix = res.namespace_prefix(Some(namespace));
            if !seen_prefixes.insert(prefix.clone()) {
                continue;
            }
            let page = self.store.list(&prefix, None, 0).await?;
            for kv in page.items {
                remaining += 1;
                let obj = decode(&kv)?;
                if !object::is_deleting(&obj) {
                    let _ = self
                        .delete(
                            &res,
                            Some(namespace),
                            object::name(&obj),
                            &Value::Null,
                            false,
                        )
                        .await;
                }
            }
        }
        if remaining > 0 {
            return Ok(false);
        }
        if !object::finalizers(&ns_obj).is_empty() {
            return Ok(false);
        }
        match self
            .store
            .delete(&namespaces.key(None, namespace), Some(ns_rev))
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
