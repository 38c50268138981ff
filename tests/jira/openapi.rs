//! Atlassian's OpenAPI documents (../shared/specs, or `TRELLIS_JIRA_SPECS`)
//! as a checker: which operation a request is, whether its query
//! parameters and body are documented, and whether an answer validates
//! against the documented schema of its status.
//!
//! A small validator for the subset the documents use: `$ref`, `type`,
//! `properties`, `required`, `items`, `additionalProperties`,
//! `allOf` / `anyOf` / `oneOf`, `nullable`, `enum`. Where an answer has an
//! example but no schema (the rank API's 207), the example's shape is the
//! schema: the same keys, and values of the same JSON types.
//!
//! Data Center's REST v2 has no document here. Its paths are checked
//! against the v3 operation of the same path (`/rest/api/2/search` against
//! the deprecated `/rest/api/3/search`, which has v2's offset paging),
//! which has the same request and answer shapes for everything Trellis
//! uses; the Epic Link custom field and v2's wiki-markup text fields are
//! not described by it (`fields` is free-form in both).

use std::sync::OnceLock;

use serde_json::Value;

pub struct Docs {
    platform: Value,
    agile: Value,
}

/// Parsed once per test binary: the platform document is 2.4 MB.
pub fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let dir = std::env::var("TRELLIS_JIRA_SPECS")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/specs").to_owned());
        let read = |name: &str| -> Value {
            let path = format!("{dir}/{name}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "Atlassian's OpenAPI document {path}: {e}; set TRELLIS_JIRA_SPECS to its folder"
                )
            });
            serde_json::from_str(&text).expect("an OpenAPI document is JSON")
        };
        Docs {
            platform: read("jira-cloud-platform.v3.json"),
            agile: read("jira-software-agile.v3.json"),
        }
    })
}

/// One documented operation.
pub struct Operation {
    doc: &'static Value,
    pub template: String,
    op: &'static Value,
    path_item: &'static Value,
}

impl Docs {
    /// The operation `method path` is, with Data Center's v2 read as v3.
    pub fn operation(&'static self, method: &str, path: &str) -> Result<Operation, String> {
        let path = match path.strip_prefix("/rest/api/2/") {
            Some(rest) => format!("/rest/api/3/{rest}"),
            None => path.to_owned(),
        };
        let doc = if path.starts_with("/rest/agile/") {
            &self.agile
        } else {
            &self.platform
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = doc["paths"].as_object().expect("paths");
        // The most literal match wins: `/issue/bulkfetch` over `/issue/{issueIdOrKey}`.
        let (template, path_item) = paths
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
                let fits = parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()));
                fits.then(|| {
                    let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
                    (literal, template, item)
                })
            })
            .max_by_key(|(literal, ..)| *literal)
            .map(|(_, t, i)| (t.clone(), i))
            .ok_or_else(|| format!("{method} {path}: no such path in Atlassian's document"))?;
        let op = path_item
            .get(method.to_ascii_lowercase())
            .ok_or_else(|| format!("{method} {template}: the path has no {method} operation"))?;
        Ok(Operation {
            doc,
            template,
            op,
            path_item,
        })
    }
}

impl Operation {
    fn name(&self) -> String {
        self.op["operationId"]
            .as_str()
            .unwrap_or(&self.template)
            .to_owned()
    }

    /// Query parameters and the body against the document.
    pub fn check_request(&self, query: &[(String, String)], body: Option<&Value>) -> Vec<String> {
        let mut errors = Vec::new();
        let documented: Vec<&str> = self.op["parameters"]
            .as_array()
            .into_iter()
            .chain(self.path_item["parameters"].as_array())
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for (name, _) in query {
            if !documented.contains(&name.as_str()) {
                errors.push(format!(
                    "{}: query parameter `{name}` is not documented (documented: {})",
                    self.name(),
                    documented.join(", ")
                ));
            }
        }
        let schema = &self.op["requestBody"]["content"]["application/json"]["schema"];
        match (body, schema.is_null()) {
            (Some(body), false) => validate(
                self.doc,
                schema,
                body,
                &format!("{} request", self.name()),
                &mut errors,
            ),
            (Some(_), true) => errors.push(format!("{}: takes no JSON body", self.name())),
            (None, _) => {
                if self.op["requestBody"]["required"] == true {
                    errors.push(format!("{}: a body is required", self.name()));
                }
            }
        }
        errors
    }

    /// An answer against the documented schema of its status. Rate limits,
    /// server errors and removed APIs (410) may come from any operation, as
    /// Atlassian documents them once for all; every error body must be an
    /// `ErrorCollection`.
    pub fn check_response(&self, status: u16, body: Option<&Value>) -> Vec<String> {
        let mut errors = Vec::new();
        let here = format!("{} {status} answer", self.name());
        let response = &self.op["responses"][status.to_string()];
        let general = matches!(status, 410 | 429 | 500..=599);
        if response.is_null() && !general {
            errors.push(format!(
                "{}: status {status} is not documented",
                self.name()
            ));
        }
        let Some(body) = body else {
            return errors;
        };
        if status >= 400 {
            let schema = serde_json::json!({"$ref": "#/components/schemas/ErrorCollection"});
            validate(&docs().platform, &schema, body, &here, &mut errors);
            return errors;
        }
        let content = &response["content"]["application/json"];
        let schema = &content["schema"];
        if !schema.is_null() {
            validate(self.doc, schema, body, &here, &mut errors);
            check_issue_fields(body, &here, &mut errors);
        } else if let Some(example) = example(self, status) {
            same_shape(&example, body, &here, &mut errors);
        } else {
            errors.push(format!("{here}: documented without a body"));
        }
        errors
    }
}

/// `IssueBean.fields` is free-form in the document; the system fields
/// Trellis reads have schemas of their own, checked here.
fn check_issue_fields(body: &Value, here: &str, errors: &mut Vec<String>) {
    let issues: Vec<&Value> = match body {
        Value::Object(map) if map.contains_key("fields") => vec![body],
        Value::Object(map) => map
            .get("issues")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let platform = &docs().platform;
    for issue in issues {
        let Some(fields) = issue["fields"].as_object() else {
            continue;
        };
        for (name, value) in fields {
            let schema = match name.as_str() {
                "status" => "StatusDetails",
                "issuetype" => "IssueTypeDetails",
                "priority" => "Priority",
                "assignee" => "UserDetails",
                "issuelinks" => {
                    // An entry names only the other issue, as the
                    // document's own IssueBean examples show; IssueLink's
                    // `required` (both ends) is GET issueLink/{id}'s.
                    let mut schema = platform["components"]["schemas"]["IssueLink"].clone();
                    schema.as_object_mut().expect("a schema").remove("required");
                    for link in value.as_array().into_iter().flatten() {
                        validate(
                            platform,
                            &schema,
                            link,
                            &format!("{here}: issuelinks"),
                            errors,
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            if value.is_null() {
                continue;
            }
            let schema = serde_json::json!({"$ref": format!("#/components/schemas/{schema}")});
            validate(
                platform,
                &schema,
                value,
                &format!("{here}: fields.{name}"),
                errors,
            );
        }
    }
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => schema,
    }
}

/// Whether `value` is valid under `schema`; each problem names where.
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            validate(doc, part, value, at, errors);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options.iter().any(|option| {
                let mut found = Vec::new();
                validate(doc, option, value, at, &mut found);
                found.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: matches none of the {key} schemas"));
            }
        }
    }
    if let Some(kind) = schema["type"].as_str() {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            errors.push(format!("{at}: expected {kind}, got {value}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{at}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Value::Object(map) = value {
        let properties = schema["properties"].as_object();
        for name in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(name) {
                errors.push(format!("{at}: required field `{name}` is missing"));
            }
        }
        for (name, field) in map {
            let here = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => validate(doc, property, field, &here, errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => errors.push(format!("{here}: not a documented field")),
                    extra @ Value::Object(_) => validate(doc, extra, field, &here, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, element) in items.iter().enumerate() {
            validate(doc, item, element, &format!("{at}[{i}]"), errors);
        }
    }
}

/// An example as a shape: the entries of each array merged into one (the
/// example's entries differ in which keys they show).
fn shape(example: &Value) -> Value {
    match example {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => {
            let mut union = serde_json::Map::new();
            for item in items {
                match shape(item) {
                    Value::Object(map) => union.extend(map),
                    other => return Value::Array(vec![other]),
                }
            }
            Value::Array(vec![Value::Object(union)])
        }
        other => other.clone(),
    }
}

fn example(op: &Operation, status: u16) -> Option<Value> {
    let example =
        op.op["responses"][status.to_string()]["content"]["application/json"].get("example")?;
    Some(shape(&match example {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    }))
}

/// `value` has the shape's keys (no others) and JSON types.
fn same_shape(shape: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    match (shape, value) {
        (Value::Object(shape), Value::Object(map)) => {
            for (name, field) in map {
                match shape.get(name) {
                    Some(expected) => same_shape(expected, field, &format!("{at}.{name}"), errors),
                    None => errors.push(format!("{at}.{name}: not in the documented example")),
                }
            }
        }
        (Value::Array(shape), Value::Array(items)) => {
            let Some(shape) = shape.first() else { return };
            for (i, item) in items.iter().enumerate() {
                same_shape(shape, item, &format!("{at}[{i}]"), errors);
            }
        }
        (e, v) if std::mem::discriminant(e) == std::mem::discriminant(v) => {}
        (e, v) => errors.push(format!("{at}: expected a value like {e}, got {v}")),
    }
}

/// A documented component schema, for the list of fields the client reads.
pub fn has_field(component: &str, field: &str) -> bool {
    let docs = docs();
    [&docs.platform, &docs.agile].iter().any(|doc| {
        let schema = &doc["components"]["schemas"][component];
        let mut found = false;
        properties(doc, schema, &mut |name| found |= name == field);
        found
    })
}

fn properties(doc: &Value, schema: &Value, visit: &mut dyn FnMut(&str)) {
    let schema = resolve(doc, schema);
    for name in schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys())
    {
        visit(name);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        properties(doc, part, visit);
    }
}

/// Whether an operation's documented example answer (for answers
/// without a schema) has the `keys` path, through arrays.
pub fn example_has(method: &str, path: &str, status: u16, keys: &[&str]) -> bool {
    let Some(mut value) = docs()
        .operation(method, path)
        .ok()
        .and_then(|op| example(&op, status))
    else {
        return false;
    };
    for key in keys {
        if let Value::Array(items) = value {
            value = items.into_iter().next().unwrap_or(Value::Null);
        }
        match value.get(key) {
            Some(next) => value = next.clone(),
            None => return false,
        }
    }
    true
}
