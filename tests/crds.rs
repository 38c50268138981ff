//! The committed CRDs are current, and structural as the Kubernetes API
//! server requires (no cluster is needed to check that).

use serde_json::Value;

const COMMITTED: &str = include_str!("../crds/trellis.dev.yaml");

#[test]
fn committed_crds_match_the_code() {
    let generated = trellis::spec::crds_yaml();
    if generated != COMMITTED {
        let diff = similar::TextDiff::from_lines(COMMITTED, generated.as_str())
            .unified_diff()
            .header("crds/trellis.dev.yaml", "generated")
            .to_string();
        panic!(
            "crds/ is stale; regenerate it with `cargo run -- crds > crds/trellis.dev.yaml`\n{diff}"
        );
    }
}

fn crds() -> Vec<Value> {
    serde_saphyr::from_multiple(COMMITTED).expect("the committed CRDs parse")
}

/// Problems that make a schema non-structural, with their JSON paths.
fn structural_problems(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        problems.push(format!("{path}: a schema must be an object"));
        return;
    };
    for forbidden in [
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "$ref",
        "definitions",
        "$defs",
    ] {
        if object.contains_key(forbidden) {
            problems.push(format!(
                "{path}: `{forbidden}` is not allowed in a structural schema"
            ));
        }
    }
    let preserves = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match object.get("type").and_then(Value::as_str) {
        Some("object") | Some("array") | Some("string") | Some("integer") | Some("number")
        | Some("boolean") => {}
        Some(other) => problems.push(format!("{path}: unknown type {other}")),
        None if preserves => {}
        None => problems.push(format!("{path}: every node needs a type")),
    }
    if object.contains_key("properties") && object.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties cannot be combined"
        ));
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            structural_problems(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = object.get("items") {
        structural_problems(items, &format!("{path}[]"), problems);
    }
    if let Some(extra) = object.get("additionalProperties").filter(|v| v.is_object()) {
        structural_problems(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn every_crd_schema_is_structural() {
    let crds = crds();
    assert_eq!(crds.len(), 4);
    let mut problems = Vec::new();
    for crd in &crds {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let schema = &version["schema"]["openAPIV3Schema"];
            assert_eq!(
                schema["type"], "object",
                "{kind}: the root must be an object"
            );
            structural_problems(schema, kind, &mut problems);
        }
    }
    assert!(
        problems.is_empty(),
        "non-structural schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_rejects_what_the_api_server_rejects() {
    let mut problems = Vec::new();
    let bad: Value = serde_json::json!({
        "type": "object",
        "properties": { "free": {}, "either": { "type": "string", "anyOf": [] } }
    });
    structural_problems(&bad, "root", &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn kinds_have_printer_columns_short_names_and_the_trellis_category() {
    for crd in crds() {
        let names = &crd["spec"]["names"];
        let kind = names["kind"].as_str().unwrap();
        assert_eq!(crd["spec"]["group"], "trellis.dev");
        assert_eq!(
            names["categories"],
            serde_json::json!(["trellis"]),
            "{kind}"
        );
        assert!(
            names["shortNames"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{kind}"
        );
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(
            version["subresources"]["status"].is_object(),
            "{kind} has a status subresource"
        );
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            columns.contains(&"Status") && columns.contains(&"Age"),
            "{kind}: {columns:?}"
        );
    }
}

#[test]
fn synchronizer_columns_give_the_overview() {
    let crds = crds();
    let sync = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == "Synchronizer")
        .unwrap();
    let columns: Vec<&str> = sync["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Structure",
            "Type",
            "Enabled",
            "Status",
            "Last Sync",
            "Errors",
            "Age"
        ]
    );
}
