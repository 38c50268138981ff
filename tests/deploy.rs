//! deploy/ renders with `kubectl kustomize`, and what it grants matches what
//! the controller does: every API call it makes is allowed, the people's
//! roles are view, edit and control, the admission policy guards Resyncs
//! and Synchronizers, and the Deployment runs the controller with its store
//! on the volume and its probes where the server listens.

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
    // The UI asks who a token is and what its owner may do, and no more.
    let delegator = find(
        &docs,
        "ClusterRoleBinding",
        "trellis-controller-auth-delegator",
    );
    assert_eq!(delegator["roleRef"]["name"], "system:auth-delegator");
    assert_eq!(delegator["subjects"][0]["name"], "trellis-controller");
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
fn people_roles_are_view_edit_and_control() {
    let Some(docs) = rendered() else { return };
    let view = find(&docs, "ClusterRole", "trellis-view");
    let edit = find(&docs, "ClusterRole", "trellis-edit");
    let control = find(&docs, "ClusterRole", "trellis-control");
    assert!(allows(view, "trellis.dev", "resyncs", "list"));
    assert!(
        allows(view, "", "events", "list"),
        "kubectl describe shows events"
    );
    assert!(!allows(view, "trellis.dev", "structures", "edit"));
    assert!(allows(edit, "trellis.dev", "structures", "edit"));
    assert!(allows(edit, "trellis.dev", "structures", "patch"));
    assert!(!allows(edit, "trellis.dev", "structures", "control"));
    assert!(!allows(edit, "trellis.dev", "synchronizers", "patch"));
    assert!(!allows(edit, "trellis.dev", "resyncs", "create"));
    assert!(allows(control, "trellis.dev", "structures", "control"));
    assert!(allows(control, "trellis.dev", "resyncs", "create"));
    assert!(
        allows(control, "trellis.dev", "resyncs", "patch"),
        "approves plans"
    );
    // enableAfter changes a Synchronizer's spec, which the policy guards.
    let controller = find(&docs, "ClusterRole", "trellis-controller");
    assert!(allows(controller, "trellis.dev", "structures", "control"));
}

/// The policy's CEL runs only in an API server (tests/cluster.rs drives it
/// against a real one); here, that it is installed, denies, and guards
/// what it says.
#[test]
fn the_admission_policy_guards_resyncs_and_synchronizers() {
    let Some(docs) = rendered() else { return };
    let policy = find(&docs, "ValidatingAdmissionPolicy", "trellis-permissions");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let rules = &policy["spec"]["matchConstraints"]["resourceRules"];
    assert_eq!(
        rules[0]["resources"],
        serde_json::json!(["resyncs", "synchronizers"])
    );
    assert_eq!(
        rules[0]["operations"],
        serde_json::json!(["CREATE", "UPDATE"])
    );
    let text = serde_json::to_string(&policy["spec"]).unwrap();
    for needle in [
        "check('control')",
        "check('get')",
        "trellis.dev/requested-by",
        "trellis.dev/structure",
        "request.userInfo.username",
    ] {
        assert!(text.contains(needle), "the policy checks {needle}");
    }
    let binding = find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "trellis-permissions",
    );
    assert_eq!(binding["spec"]["policyName"], "trellis-permissions");
    assert_eq!(
        binding["spec"]["validationActions"],
        serde_json::json!(["Deny"])
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
    // Webhooks have a port and a Service, and are off until asked for.
    assert_eq!(container["ports"][1]["name"], "webhooks");
    let webhooks = find(&docs, "Service", "trellis-webhooks");
    assert_eq!(webhooks["spec"]["ports"][0]["targetPort"], "webhooks");
    assert!(!args.iter().any(|a| a.starts_with("--webhook-listen")));
    let env = container["env"].as_array().unwrap();
    assert!(!env.iter().any(|e| e["name"] == "TRELLIS_WEBHOOK_LISTEN"));
    // So has the web UI, and it is off until asked for too.
    assert_eq!(container["ports"][2]["name"], "ui");
    let ui = find(&docs, "Service", "trellis-ui");
    assert_eq!(ui["spec"]["ports"][0]["targetPort"], "ui");
    assert!(!env.iter().any(|e| e["name"] == "TRELLIS_UI_LISTEN"));
}
