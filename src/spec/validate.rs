//! Checks across declarations: names, references, parameters and directions.

use std::collections::{HashMap, HashSet};

use crate::model::Direction;
use crate::plan::Rule;
use crate::tracker::local::Query;
use crate::tracker::redmine;

use super::load::{Catalog, Declared, SpecError, local_issues_file};
use super::{
    FilterSpec, JiraDeployment, LinksSpec, PortfolioSpec, RowSpec, StatusRollupSpec, Structure,
    Synchronizer, SynchronizerType, Tracker, TrackerType,
};

/// Checks each declaration, and with `references`, how they refer to each other.
pub(super) fn validate(catalog: &Catalog, references: bool) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for tracker in &catalog.trackers {
        validate_tracker(tracker, &mut errors);
    }
    if !references {
        return errors;
    }
    duplicates(catalog, &mut errors);
    for structure in &catalog.structures {
        validate_structure(catalog, structure, &mut errors);
    }
    for sync in &catalog.synchronizers {
        validate_synchronizer(catalog, sync, &mut errors);
    }
    for resync in &catalog.resyncs {
        let spec = &resync.resource.spec;
        let id = resync.resource.synchronizer_id();
        match catalog.synchronizer(&id) {
            None => errors.push(resync.origin.error(
                "spec.synchronizerRef.name",
                missing(
                    "Synchronizer",
                    &id,
                    catalog.synchronizers.iter().map(Declared::id),
                ),
            )),
            Some(sync) => {
                let kind = sync.resource.spec.type_;
                if !supported(kind).contains(&spec.direction.into()) {
                    errors.push(resync.origin.error(
                        "spec.direction",
                        unsupported_direction(kind, spec.direction.into()),
                    ));
                }
            }
        }
    }
    errors
}

fn validate_tracker(tracker: &Declared<Tracker>, errors: &mut Vec<SpecError>) {
    let spec = &tracker.resource.spec;
    let origin = &tracker.origin;
    if let Some(webhook) = &spec.webhook {
        let secret = &webhook.secret;
        if secret.env.is_none() && secret.file.is_none() && secret.secret_ref.is_none() {
            errors.push(origin.error(
                "spec.webhook.secret",
                "a webhook needs the secret its deliveries prove themselves with: `secret: {env: JIRA_WEBHOOK_SECRET}` or `{file: PATH}` for the command line, `{secretRef: {name: SECRET, key: webhookSecret}}` in a cluster",
            ));
        }
    }
    match spec.type_ {
        TrackerType::Local => {
            match &spec.local {
                None => errors.push(origin.error(
                    "spec.type",
                    "a local tracker needs spec.local.path, the YAML file that holds its issues",
                )),
                Some(_) => {
                    let path = local_issues_file(tracker).expect("local trackers have a path");
                    if !path.is_file() {
                        errors.push(origin.error(
                            "spec.local.path",
                            format!(
                                "issues file {} does not exist (paths are relative to this file); create it with `issues: []`",
                                path.display()
                            ),
                        ));
                    }
                }
            }
            for (set, field) in [
                (spec.redmine.is_some(), "spec.redmine"),
                (spec.jira.is_some(), "spec.jira"),
                (spec.url.is_some(), "spec.url"),
                (spec.credentials.is_some(), "spec.credentials"),
                (spec.rate_limit.is_some(), "spec.rateLimit"),
            ] {
                if set {
                    errors.push(origin.error(
                        field,
                        format!("{field} is not used by local trackers; remove it"),
                    ));
                }
            }
        }
        TrackerType::Jira => {
            validate_jira(tracker, errors);
            validate_rate_limit(tracker, errors);
        }
        TrackerType::Redmine => {
            validate_rate_limit(tracker, errors);
            misplaced_settings(tracker, errors);
            validate_url(tracker, errors);
            require_credentials(tracker, "REDMINE_API_KEY", errors);
            if let Some(project) = spec.redmine.as_ref().and_then(|r| r.project.as_deref()) {
                let identifier = project.starts_with(|c: char| c.is_ascii_lowercase())
                    && project.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    });
                let id = !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit());
                if !(identifier || id) {
                    errors.push(origin.error(
                        "spec.redmine.project",
                        format!(
                            "`{project}` is not a Redmine project identifier (lower-case letters, digits, - and _, as in the project's URL) or numeric id"
                        ),
                    ));
                }
            }
        }
    }
}

fn validate_jira(tracker: &Declared<Tracker>, errors: &mut Vec<SpecError>) {
    let spec = &tracker.resource.spec;
    let origin = &tracker.origin;
    misplaced_settings(tracker, errors);
    validate_url(tracker, errors);
    require_credentials(tracker, "JIRA_API_TOKEN", errors);
    let Some(jira) = &spec.jira else {
        errors.push(origin.error(
            "spec.type",
            "a jira tracker needs spec.jira.deployment: `cloud` (REST v3, email and API token) or `datacenter` (REST v2, personal access token)",
        ));
        return;
    };
    if jira.jql.as_deref().is_some_and(|q| q.trim().is_empty()) {
        errors.push(origin.error(
            "spec.jira.jql",
            "an empty query; give the JQL of the tracker's issues (e.g. `project = PLAT`) or leave it out",
        ));
    }
    validate_gateway(tracker, jira.deployment, errors);
    match jira.deployment {
        JiraDeployment::Cloud => {
            if jira.jql.is_none() {
                errors.push(origin.error(
                    "spec.jira.deployment",
                    "Jira Cloud refuses unbounded searches: set spec.jira.jql to the tracker's issues, e.g. `project = PLAT`",
                ));
            }
            match jira.email.as_deref() {
                None => errors.push(origin.error(
                    "spec.jira.deployment",
                    "Jira Cloud signs in with the account's email and an API token: set spec.jira.email (the token goes in spec.credentials)",
                )),
                Some(email) if !email.contains('@') => errors.push(origin.error(
                    "spec.jira.email",
                    "not an email address; give the email of the Atlassian account the API token belongs to",
                )),
                Some(_) => {}
            }
        }
        JiraDeployment::Datacenter => {
            if jira.email.is_some() {
                errors.push(origin.error(
                    "spec.jira.email",
                    "Jira Data Center signs in with a personal access token alone (sent as a bearer token); remove spec.jira.email",
                ));
            }
        }
    }
}

/// Atlassian's API gateway, through which Jira Cloud's scoped API tokens
/// must go: `https://api.atlassian.com/ex/jira/{cloudId}` and nothing else.
fn validate_gateway(
    tracker: &Declared<Tracker>,
    deployment: JiraDeployment,
    errors: &mut Vec<SpecError>,
) {
    let Some(url) = tracker
        .resource
        .spec
        .url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
    else {
        return;
    };
    if url.host_str() != Some("api.atlassian.com") {
        return;
    }
    let origin = &tracker.origin;
    if deployment == JiraDeployment::Datacenter {
        errors.push(origin.error(
            "spec.url",
            "api.atlassian.com is Jira Cloud's API gateway; a Data Center server has its own address",
        ));
        return;
    }
    let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
    let cloud_id = match segments.as_slice() {
        ["ex", "jira", id] => Some(*id),
        _ => None,
    };
    let is_cloud_id = |id: &str| {
        id.len() == 36
            && id.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    if !cloud_id.is_some_and(is_cloud_id) {
        errors.push(origin.error(
            "spec.url",
            "through Atlassian's API gateway (scoped API tokens) the address is https://api.atlassian.com/ex/jira/CLOUD_ID, the site's cloud id being the `cloudId` that https://SITE.atlassian.net/_edge/tenant_info shows",
        ));
    }
}

/// Limits a server's requests can be held to: positive, finite numbers.
fn validate_rate_limit(tracker: &Declared<Tracker>, errors: &mut Vec<SpecError>) {
    let Some(limit) = &tracker.resource.spec.rate_limit else {
        return;
    };
    let origin = &tracker.origin;
    if let Some(rate) = limit.requests_per_second
        && !(rate.is_finite() && rate > 0.0)
    {
        errors.push(origin.error(
            "spec.rateLimit.requestsPerSecond",
            format!(
                "{rate} requests per second lets no request through; give a number above 0 (0.5: one every 2 s), or leave it out for no limit"
            ),
        ));
    }
    if limit.concurrent_requests == Some(0) {
        errors.push(origin.error(
            "spec.rateLimit.concurrentRequests",
            "0 requests at once lets no request through; give 1 or more, or leave it out for no limit",
        ));
    }
    if limit.requests_per_second.is_none() && limit.concurrent_requests.is_none() {
        errors.push(origin.error(
            "spec.rateLimit",
            "an empty rateLimit limits nothing; give requestsPerSecond, concurrentRequests or both, or remove it",
        ));
    }
}

/// A server tracker with another type's settings block.
fn misplaced_settings(tracker: &Declared<Tracker>, errors: &mut Vec<SpecError>) {
    let spec = &tracker.resource.spec;
    for (set, owner) in [
        (spec.local.is_some(), TrackerType::Local),
        (spec.redmine.is_some(), TrackerType::Redmine),
        (spec.jira.is_some(), TrackerType::Jira),
    ] {
        if set && owner != spec.type_ {
            let (owner, me) = (owner.as_str(), spec.type_.as_str());
            errors.push(tracker.origin.error(
                &format!("spec.{owner}"),
                format!("spec.{owner} is for {owner} trackers; remove it from this {me} tracker"),
            ));
        }
    }
}

/// A tracker that signs in needs to say where its key is.
fn require_credentials(tracker: &Declared<Tracker>, example: &str, errors: &mut Vec<SpecError>) {
    let credentials = tracker
        .resource
        .spec
        .credentials
        .clone()
        .unwrap_or_default();
    if credentials.env.is_none() && credentials.file.is_none() && credentials.secret_ref.is_none() {
        errors.push(tracker.origin.error(
            "spec.credentials",
            format!(
                "a {} tracker needs its API key: `credentials: {{env: {example}}}` or `{{file: PATH}}` for the command line, `{{secretRef: {{name: SECRET}}}}` in a cluster",
                tracker.resource.spec.type_.as_str()
            ),
        ));
    }
}

/// A server URL: http(s), and no secret in it.
fn validate_url(tracker: &Declared<Tracker>, errors: &mut Vec<SpecError>) {
    let origin = &tracker.origin;
    let Some(url) = &tracker.resource.spec.url else {
        errors.push(origin.error(
            "spec.type",
            "this tracker needs spec.url, its server's address (e.g. https://redmine.example.com)",
        ));
        return;
    };
    match reqwest::Url::parse(url) {
        // Not echoed: a malformed URL may still hold a password.
        Err(e) => errors.push(origin.error("spec.url", format!("not a URL: {e}"))),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => errors.push(origin.error(
            "spec.url",
            "give an http:// or https:// address",
        )),
        Ok(parsed)
            if !parsed.username().is_empty()
                || parsed.password().is_some()
                || parsed.query().is_some() =>
        {
            errors.push(origin.error(
                "spec.url",
                "the URL carries credentials or parameters; give the bare server address and put the key in spec.credentials",
            ))
        }
        Ok(_) => {}
    }
}

fn duplicates(catalog: &Catalog, errors: &mut Vec<SpecError>) {
    fn check<T: kube::Resource>(kind: &str, list: &[Declared<T>], errors: &mut Vec<SpecError>) {
        let mut seen: HashMap<String, &Declared<T>> = HashMap::new();
        for declared in list {
            match seen.get(&declared.id()) {
                Some(first) => errors.push(declared.origin.error(
                    "metadata.name",
                    format!(
                        "{kind} {} is declared twice (first at {}); rename one of them",
                        declared.id(),
                        first.origin.place("metadata.name")
                    ),
                )),
                None => {
                    seen.insert(declared.id(), declared);
                }
            }
        }
    }
    check("Tracker", &catalog.trackers, errors);
    check("Structure", &catalog.structures, errors);
    check("Synchronizer", &catalog.synchronizers, errors);
    check("Resync", &catalog.resyncs, errors);
}

fn validate_structure(
    catalog: &Catalog,
    structure: &Declared<Structure>,
    errors: &mut Vec<SpecError>,
) {
    let spec = &structure.resource.spec;
    let origin = &structure.origin;
    match (&spec.tracker_ref, &spec.portfolio) {
        (Some(_), Some(_)) => errors.push(origin.error(
            "spec.portfolio",
            "a portfolio aggregates other structures and has no tracker of its own; remove spec.trackerRef or spec.portfolio",
        )),
        (None, None) => errors.push(origin.error(
            "spec",
            "a structure needs spec.trackerRef (the tracker whose issues it holds) or spec.portfolio (the structures it aggregates)",
        )),
        (Some(_), None) => {
            let tracker = structure.resource.tracker_id().expect("has a trackerRef");
            if catalog.tracker(&tracker).is_none() {
                errors.push(origin.error(
                    "spec.trackerRef.name",
                    missing(
                        "Tracker",
                        &tracker,
                        catalog.trackers.iter().map(Declared::id),
                    ),
                ));
            }
        }
        (None, Some(portfolio)) => validate_portfolio(catalog, structure, portfolio, errors),
    }
    let mut seen = HashSet::new();
    check_rows(structure, "spec.rows", &spec.rows, &mut seen, errors);
}

fn validate_portfolio(
    catalog: &Catalog,
    structure: &Declared<Structure>,
    portfolio: &PortfolioSpec,
    errors: &mut Vec<SpecError>,
) {
    let origin = &structure.origin;
    if !structure.resource.spec.rows.is_empty() {
        errors.push(origin.error(
            "spec.rows",
            "a portfolio's rows are its structures' rows; declare these rows in one of them",
        ));
    }
    if portfolio.structure_refs.is_empty() {
        errors.push(origin.error(
            "spec.portfolio.structureRefs",
            "name at least one structure to aggregate, e.g. `structureRefs: [{name: roadmap}]`",
        ));
    }
    let mut seen = HashSet::new();
    for (i, reference) in portfolio.structure_refs.iter().enumerate() {
        let field = format!("spec.portfolio.structureRefs[{i}].name");
        let id = super::ObjectId::referenced(&structure.resource, &reference.name).to_string();
        match catalog.structure(&id) {
            _ if !seen.insert(id.clone()) => {
                errors.push(origin.error(&field, format!("{id} is listed twice")))
            }
            None => errors.push(origin.error(
                &field,
                missing(
                    "Structure",
                    &id,
                    catalog.structures.iter().map(Declared::id),
                ),
            )),
            // One level only: no loops, and every row is one structure's row.
            Some(member) if member.resource.spec.portfolio.is_some() => errors.push(origin.error(
                &field,
                format!("{id} is a portfolio itself; name the structures it aggregates instead"),
            )),
            Some(_) => {}
        }
    }
}

fn check_rows(
    structure: &Declared<Structure>,
    path: &str,
    rows: &[RowSpec],
    seen: &mut HashSet<String>,
    errors: &mut Vec<SpecError>,
) {
    for (i, row) in rows.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let label = match (&row.folder, &row.issue) {
            (Some(folder), None) => format!("folder {folder}"),
            (None, Some(issue)) => format!("issue {issue}"),
            _ => {
                errors.push(
                    structure
                        .origin
                        .error(&here, "a row needs exactly one of `folder` or `issue`"),
                );
                continue;
            }
        };
        if !seen.insert(label.clone()) {
            errors.push(structure.origin.error(
                &here,
                format!("{label} is declared twice; a structure holds it once"),
            ));
        }
        check_rows(structure, &format!("{here}.rows"), &row.rows, seen, errors);
    }
}

fn validate_synchronizer(
    catalog: &Catalog,
    sync: &Declared<Synchronizer>,
    errors: &mut Vec<SpecError>,
) {
    let spec = &sync.resource.spec;
    let origin = &sync.origin;
    let structure_id = sync.resource.structure_id();
    match catalog.structure(&structure_id) {
        None => errors.push(origin.error(
            "spec.structureRef.name",
            missing(
                "Structure",
                &structure_id,
                catalog.structures.iter().map(Declared::id),
            ),
        )),
        // BigPicture: sync is not available for non-scope (portfolio) boxes.
        Some(structure) if structure.resource.spec.portfolio.is_some() => {
            let members: Vec<String> = structure
                .resource
                .spec
                .portfolio
                .iter()
                .flat_map(|p| &p.structure_refs)
                .map(|r| super::ObjectId::referenced(&structure.resource, &r.name).to_string())
                .collect();
            errors.push(origin.error(
                "spec.structureRef.name",
                format!(
                    "Structure {structure_id} is a portfolio: it has no scope of its own, so synchronizers and resyncs are not available on it; sync one of its structures instead ({})",
                    members.join(", ")
                ),
            ));
        }
        Some(_) => {}
    }
    let mut directions = HashSet::new();
    for (i, direction) in spec.directions.iter().enumerate() {
        let direction: Direction = (*direction).into();
        let field = format!("spec.directions[{i}]");
        if !supported(spec.type_).contains(&direction) {
            errors.push(origin.error(&field, unsupported_direction(spec.type_, direction)));
        } else if !directions.insert(direction) {
            errors.push(origin.error(&field, format!("direction {direction} is listed twice")));
        }
    }
    if let Some(ratio) = spec.safety.as_ref().and_then(|s| s.max_removal_ratio)
        && !(0.0..=1.0).contains(&ratio)
    {
        errors.push(origin.error(
            "spec.safety.maxRemovalRatio",
            format!("{ratio} is not a share of the structure's rows; give a number from 0 to 1 (0.5: half of them)"),
        ));
    }
    if spec.safety.as_ref().and_then(|s| s.max_rounds) == Some(0) {
        errors.push(origin.error(
            "spec.safety.maxRounds",
            "0 rounds would stop the synchronizer before it changes anything; give at least 1 (10 when left out)",
        ));
    }
    if let Err(wrong) = spec.schedule() {
        errors.extend(wrong.into_iter().map(|e| origin.error(e.field, e.message)));
    }
    // Each type's parameters live in a block of their own name.
    for (field, present, owner) in [
        ("filter", spec.filter.is_some(), SynchronizerType::Filter),
        ("links", spec.links.is_some(), SynchronizerType::Links),
        ("agile", spec.agile.is_some(), SynchronizerType::Agile),
        (
            "statusRollup",
            spec.status_rollup.is_some(),
            SynchronizerType::StatusRollup,
        ),
    ] {
        if present && spec.type_ != owner {
            errors.push(origin.error(
                &format!("spec.{field}"),
                format!(
                    "only {} synchronizers take spec.{field}; remove it or set `type: {}`",
                    owner.as_str(),
                    owner.as_str()
                ),
            ));
        }
    }
    match spec.type_ {
        SynchronizerType::Filter => match &spec.filter {
            None => errors.push(origin.error(
                "spec.type",
                "a filter synchronizer needs spec.filter with a query, e.g. `query: project = PLAT`",
            )),
            Some(filter) => validate_filter(catalog, sync, filter, errors),
        },
        SynchronizerType::StatusRollup => match &spec.status_rollup {
            None => errors.push(origin.error(
                "spec.type",
                "a statusRollup synchronizer needs spec.statusRollup with its ordered statuses, e.g. `statuses: [To Do, In Progress, Done]`",
            )),
            Some(rollup) => validate_status_rollup(sync, rollup, errors),
        },
        SynchronizerType::Links => match &spec.links {
            None => errors.push(origin.error(
                "spec.type",
                "a links synchronizer needs spec.links with a link type and which end is the parent, e.g. `{type: blocks, parentEnd: source}`",
            )),
            Some(links) => validate_links(catalog, sync, links, errors),
        },
        SynchronizerType::Agile => match &spec.agile {
            None => errors.push(origin.error(
                "spec.type",
                "an agile synchronizer needs spec.agile with the query of its issues, e.g. `{query: project = PLAT}`",
            )),
            Some(agile) => {
                if tracker_type(catalog, sync) == Some(TrackerType::Redmine) {
                    errors.push(origin.error(
                        "spec.type",
                        "Redmine has no epics and no rank, which an agile synchronizer reads and writes; use `type: subtasks` for Redmine's parent tasks",
                    ));
                } else {
                    check_query(catalog, sync, "spec.agile.query", &agile.query, errors);
                }
            }
        },
        SynchronizerType::Subtasks => {}
    }
}

/// The type of the tracker behind a synchronizer's structure, if declared.
fn tracker_type(catalog: &Catalog, sync: &Declared<Synchronizer>) -> Option<TrackerType> {
    let structure_id = sync.resource.structure_id();
    let structure = catalog.structure(&structure_id)?;
    let tracker = structure.resource.tracker_id()?;
    catalog.tracker(&tracker).map(|t| t.resource.spec.type_)
}

/// A query in the language of the synchronizer's tracker.
fn check_query(
    catalog: &Catalog,
    sync: &Declared<Synchronizer>,
    field: &str,
    query: &str,
    errors: &mut Vec<SpecError>,
) {
    let checked = match tracker_type(catalog, sync) {
        Some(TrackerType::Redmine) => redmine::Filter::parse(query)
            .map(drop)
            .map_err(|e| e.to_string()),
        // JQL: Jira checks it at the first search, with its own message.
        Some(TrackerType::Jira) if query.trim().is_empty() => {
            Err("an empty query; give JQL, e.g. `issuetype = Epic`".to_owned())
        }
        Some(TrackerType::Jira) => Ok(()),
        _ => Query::parse(query).map(drop).map_err(|e| e.to_string()),
    };
    if let Err(e) = checked {
        errors.push(sync.origin.error(field, format!("invalid query: {e}")));
    }
}

fn validate_links(
    catalog: &Catalog,
    sync: &Declared<Synchronizer>,
    links: &LinksSpec,
    errors: &mut Vec<SpecError>,
) {
    let origin = &sync.origin;
    let link_type = links.type_.as_str();
    if link_type.trim().is_empty() {
        errors.push(origin.error(
            "spec.links.type",
            "name the link type, as the tracker names it (e.g. `blocks`)",
        ));
    } else if tracker_type(catalog, sync) == Some(TrackerType::Redmine)
        && !redmine::STORED_AS_WRITTEN.contains(&link_type)
    {
        // Redmine turns these around when it stores them: links Trellis
        // wrote would read back as another type, or with the ends swapped.
        let hint = match redmine::forward_type(link_type) {
            Some(forward) => format!(
                "Redmine stores `{link_type}` as `{forward}` with the ends swapped; use `type: {forward}` and swap `parentEnd`"
            ),
            None if link_type == "relates" => {
                "Redmine stores `relates` from the smaller issue id, so it has no direction to read a hierarchy from".into()
            }
            None => format!("Redmine has no relation type `{link_type}`"),
        };
        errors.push(origin.error(
            "spec.links.type",
            format!(
                "{hint}; a links synchronizer on Redmine takes one of: {}",
                redmine::STORED_AS_WRITTEN.join(", ")
            ),
        ));
    }
    for (field, query) in [
        ("spec.links.parentFilter", &links.parent_filter),
        ("spec.links.childFilter", &links.child_filter),
    ] {
        if let Some(query) = query {
            check_query(catalog, sync, field, query, errors);
        }
    }
}

fn validate_filter(
    catalog: &Catalog,
    sync: &Declared<Synchronizer>,
    filter: &FilterSpec,
    errors: &mut Vec<SpecError>,
) {
    let origin = &sync.origin;
    let structure_id = sync.resource.structure_id();
    let structure = catalog.structure(&structure_id);
    check_query(catalog, sync, "spec.filter.query", &filter.query, errors);
    if let Some(under) = &filter.under {
        match (&under.folder, &under.issue, structure) {
            (Some(folder), None, Some(structure)) => {
                if !declares_folder(&structure.resource.spec.rows, folder) {
                    errors.push(origin.error(
                        "spec.filter.under.folder",
                        format!(
                            "folder {folder} is not declared in Structure {structure_id}; add it to its spec.rows ({})",
                            structure.origin.place("spec")
                        ),
                    ));
                }
            }
            (Some(_), None, None) | (None, Some(_), _) => {}
            _ => errors.push(origin.error(
                "spec.filter.under",
                "give exactly one of `folder` or `issue`, or leave `under` out for the top level",
            )),
        }
    }
}

fn validate_status_rollup(
    sync: &Declared<Synchronizer>,
    rollup: &StatusRollupSpec,
    errors: &mut Vec<SpecError>,
) {
    let origin = &sync.origin;
    if rollup.statuses.len() < 2 {
        errors.push(origin.error(
            "spec.statusRollup.statuses",
            "list at least two statuses, earliest first, e.g. `[To Do, In Progress, Done]`: a parent takes the earliest among its children",
        ));
    }
    for (field, names) in [
        ("statuses", &rollup.statuses),
        ("issueTypes", &rollup.issue_types),
    ] {
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let here = format!("spec.statusRollup.{field}[{i}]");
            if name.trim().is_empty() {
                errors.push(origin.error(&here, "an empty name; remove it"));
            } else if !seen.insert(name) {
                errors.push(origin.error(&here, format!("`{name}` is listed twice")));
            }
        }
    }
}

fn declares_folder(rows: &[RowSpec], folder: &str) -> bool {
    rows.iter()
        .any(|r| r.folder.as_deref() == Some(folder) || declares_folder(&r.rows, folder))
}

/// The directions a synchronizer type supports; the planner's rules decide.
pub fn supported(kind: SynchronizerType) -> &'static [Direction] {
    match kind {
        SynchronizerType::Filter => Rule::FILTER_DIRECTIONS,
        SynchronizerType::Subtasks => Rule::SUBTASKS_DIRECTIONS,
        SynchronizerType::Links => Rule::LINKS_DIRECTIONS,
        SynchronizerType::Agile => Rule::AGILE_DIRECTIONS,
        SynchronizerType::StatusRollup => Rule::STATUS_ROLLUP_DIRECTIONS,
    }
}

pub fn unsupported_direction(kind: SynchronizerType, direction: Direction) -> String {
    let names: Vec<&str> = supported(kind).iter().map(|d| d.as_str()).collect();
    format!(
        "a {} synchronizer cannot sync {direction}; supported directions: {}",
        kind.as_str(),
        names.join(", ")
    )
}

fn missing(kind: &str, id: &str, known: impl Iterator<Item = String>) -> String {
    let known: Vec<String> = known.collect();
    let hint = if known.is_empty() {
        format!("no {kind} is declared")
    } else {
        format!("declared: {}", known.join(", "))
    };
    format!("{kind} {id} is not declared; fix the name or declare it ({hint})")
}
