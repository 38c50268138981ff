//! deploy/ renders with `kubectl kustomize`, and what it grants matches what
//! the controller does: every API call it makes is allowed, the people's
//! roles separate editing from running resyncs, and the Deployment runs
//! the controller with its store on the volume and its probes where the
//! server listens.

use std::process::Command;

use serde_json::Value;

fn rendered() -> Option<Vec<Value>> {
    let output = match Command::new("kubectl")
        .args(["kustomize", "deploy/"])
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("kubectl is needed to render deploy/: {e}");
            }
            eprintln!("SKIPPED: kubectl is not installed ({e})");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    Some(
        text.split("\n---\n")
            .map(|doc| serde_saphyr::from_str(doc).unwrap())
            .collect(),
    )
}

fn find<'d>(docs: &'d [Value], kind: &str, name: &str) -> &'d Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is not rendered"))
}

/// Whether `role` allows `verb` on `resource` in `group`.
fn allows(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Value, item: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|v| v == item || v == "*")
    };
    role["rules"].as_array().unwrap().iter().any(|rule| {
        has(&rule["apiGroups"], group)
            && has(&rule["resources"], resource)
            && has(&rule["verbs"], verb)
    })
}

#[test]
fn the_controller_may_make_every_call_it_makes_and_no_more() {
    let Some(docs) = rendered() else { return };
    let role = find(&docs, "ClusterRole", "trellis-controller");
    let kinds = ["trackers", "structures", "synchronizers", "resyncs"];
    for kind in kinds {
        for verb in ["get", "list", "watch"] {
            assert!(allows(role, "trellis.dev", kind, verb), "{verb} {kind}");
        }
        assert!(
            allows(role, "trellis.dev", &format!("{kind}/status"), "patch"),
            "{kind} status"
        );
        assert!(
            !allows(role, "trellis.dev", kind, "delete"),
            "never deletes {kind}"
        );
        assert!(
            !allows(role, "trellis.dev", kind, "create"),
            "never creates {kind}"
        );
    }
    // Finalizers on structures and synchronizers; enableAfter patches a synchronizer.
    for kind in ["structures", "synchronizers"] {
        assert!(allows(role, "trellis.dev", kind, "patch"), "patch {kind}");
    }
    assert!(allows(role, "", "secrets", "get"));
    assert!(
        !allows(role, "", "secrets", "list"),
        "only the Secrets trackers name"
    );
    assert!(allows(role, "events.k8s.io", "events", "create"));
    let lease = find(&docs, "Role", "trellis-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "trellis-system");
    // kube-leader-election reads, creates and replaces the Lease.
    for verb in ["get", "create", "update", "patch"] {
        assert!(
            allows(lease, "coordination.k8s.io", "leases", verb),
            "{verb} leases"
        );
    }
}

#[test]
fn people_roles_separate_editing_from_running_resyncs() {
    let Some(docs) = rendered() else { return };
    let viewer = find(&docs, "ClusterRole", "trellis-viewer");
    let editor = find(&docs, "ClusterRole", "trellis-editor");
    let operator = find(&docs, "ClusterRole", "trellis-operator");
    assert!(allows(viewer, "trellis.dev", "resyncs", "list"));
    assert!(
        allows(viewer, "", "events", "list"),
        "kubectl describe shows events"
    );
    assert!(!allows(viewer, "trellis.dev", "synchronizers", "patch"));
    assert!(allows(editor, "trellis.dev", "synchronizers", "patch"));
    assert!(!allows(editor, "trellis.dev", "resyncs", "create"));
    assert!(
        !allows(editor, "trellis.dev", "resyncs", "patch"),
        "cannot approve"
    );
    assert!(allows(operator, "trellis.dev", "resyncs", "create"));
    assert!(
        allows(operator, "trellis.dev", "resyncs", "patch"),
        "approves plans"
    );
}

#[test]
fn the_deployment_runs_the_controller_with_its_store_and_probes() {
    let Some(docs) = rendered() else { return };
    let crds = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .count();
    assert_eq!(crds, 4);
    let deployment = find(&docs, "Deployment", "trellis-controller");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "trellis-controller");
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "controller");
    let state = args[args.iter().position(|a| *a == "--state").unwrap() + 1];
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        state.starts_with(mount),
        "the store {state} is on the volume {mount}"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The controller listens on 8080 by default (`trellis controller --listen`).
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let service = find(&docs, "Service", "trellis-controller-metrics");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}
