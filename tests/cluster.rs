//! Opt-in: the controller against a real cluster, whichever KUBECONFIG
//! names (kind, k3d, a shared dev cluster). Ignored by default, since no
//! cluster can run on the build machines; run it with
//!
//! ```sh
//! cargo test --test cluster -- --ignored
//! ```
//!
//! It installs the CRDs, runs `trellis controller` as a child process on
//! this machine (so the local tracker's file is readable), and walks a
//! destructive Resync from AwaitingApproval to Succeeded in a namespace of
//! its own, which it deletes at the end.

use std::process::{Child, Command};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;
use trellis::spec::{Resync, Structure, Synchronizer, Tracker};

const MANAGER: &str = "trellis-cluster-test";

/// Stops the controller however the test ends.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn apply<K>(api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Polls a Resync until its phase is `phase` (at most a minute).
async fn wait_for(api: &Api<Resync>, phase: &str) -> Resync {
    for _ in 0..120 {
        let resync = api.get("export").await.unwrap();
        if resync.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase) {
            return resync;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the Resync did not reach {phase}");
}

#[tokio::test]
#[ignore = "needs the cluster KUBECONFIG names"]
async fn a_destructive_resync_waits_for_approval_then_runs_in_a_cluster() {
    let client = Client::try_default().await.expect("a cluster (KUBECONFIG)");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        Tracker::crd(),
        Structure::crd(),
        Synchronizer::crd(),
        Resync::crd(),
    ] {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let namespace = format!("trellis-test-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let issues = dir.path().join("issues.yaml");
    std::fs::write(
        &issues,
        "issues:\n- {key: A-1, summary: Epic, type: Epic, status: Open}\n- {key: A-2, summary: Story, type: Story, status: Open, parent: A-1}\n",
    )
    .unwrap();
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args([
                "controller",
                "--namespace",
                &namespace,
                "--lease-namespace",
                &namespace,
            ])
            .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
            .arg("--local-trackers")
            .arg(dir.path())
            .arg("--state")
            .arg(dir.path().join("trellis.db"))
            .spawn()
            .unwrap(),
    );

    let group = "trellis.dev/v1alpha1";
    apply(
        &Api::<Tracker>::namespaced(client.clone(), &namespace),
        "local",
        json!({"apiVersion": group, "kind": "Tracker", "metadata": {"name": "local"},
               "spec": {"type": "local", "local": {"path": issues}}}),
    )
    .await;
    apply(
        &Api::<Structure>::namespaced(client.clone(), &namespace),
        "plan",
        json!({"apiVersion": group, "kind": "Structure", "metadata": {"name": "plan"},
               "spec": {"trackerRef": {"name": "local"}, "rows": [{"issue": "A-1"}, {"issue": "A-2"}]}}),
    )
    .await;
    apply(
        &Api::<Synchronizer>::namespaced(client.clone(), &namespace),
        "children",
        json!({"apiVersion": group, "kind": "Synchronizer", "metadata": {"name": "children"},
               "spec": {"structureRef": {"name": "plan"}, "type": "subtasks", "enabled": false}}),
    )
    .await;
    let resyncs = Api::<Resync>::namespaced(client.clone(), &namespace);
    apply(
        &resyncs,
        "export",
        json!({"apiVersion": group, "kind": "Resync", "metadata": {"name": "export"},
               "spec": {"synchronizerRef": {"name": "children"}, "direction": "from"}}),
    )
    .await;

    let waiting = wait_for(&resyncs, "AwaitingApproval").await;
    let hash = waiting.status.unwrap().plan.unwrap().hash;
    assert!(
        std::fs::read_to_string(&issues)
            .unwrap()
            .contains("parent: A-1")
    );
    resyncs
        .patch(
            "export",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"approvedPlan": hash}})),
        )
        .await
        .unwrap();
    let done = wait_for(&resyncs, "Succeeded").await;
    assert_eq!(done.status.unwrap().plan.unwrap().hash, hash);
    assert!(
        !std::fs::read_to_string(&issues)
            .unwrap()
            .contains("parent: A-1")
    );

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}
