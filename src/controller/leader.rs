//! Leader election on a coordination.k8s.io Lease: only the replica
//! holding it syncs or writes status, so two replicas never sync the same
//! structure at once. The lease is renewed at a third of its lifetime; a
//! replica that cannot renew stops leading before the lease can pass on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};

pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's name (the pod name).
    pub identity: String,
    pub ttl: Duration,
}

/// Keeps `leading` true while this replica holds the lease; steps down
/// when `shutdown` resolves.
pub async fn lead(
    client: kube::Client,
    settings: LeaseSettings,
    leading: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let lock = LeaseLock::new(
        client,
        &settings.namespace,
        LeaseLockParams {
            lease_name: settings.name.clone(),
            holder_id: settings.identity.clone(),
            lease_ttl: settings.ttl,
        },
    );
    tokio::pin!(shutdown);
    loop {
        let now_leading = match lock.try_acquire_or_renew().await {
            Ok(LeaseLockResult::Acquired(_)) => true,
            Ok(LeaseLockResult::NotAcquired(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, lease = %settings.name, "cannot renew the lease; not leading");
                false
            }
        };
        if leading.swap(now_leading, Ordering::SeqCst) != now_leading {
            tracing::info!(leading = now_leading, identity = %settings.identity, "leadership changed");
        }
        tokio::select! {
            () = tokio::time::sleep(settings.ttl / 3) => {}
            () = &mut shutdown => break,
        }
    }
    if leading.swap(false, Ordering::SeqCst)
        && let Err(e) = lock.step_down().await
    {
        tracing::warn!(error = %e, "could not release the lease; it expires by itself");
    }
}
