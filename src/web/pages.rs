//! The pages (GET): overview, structure, history, plans, jobs, a job, a
//! synchronizer's held issues. Each reads the store read-only; the plans
//! page also reads the trackers, as `trellis plan` does.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use super::html::{button, esc, time, url};
use super::{Asked, Person, Reply, Ui, Verb, WebError};
use crate::engine::{Engine, Run, history, overview};
use crate::model::{Issue, Row, RowId, RowItem};
use crate::spec::{Kind, SynchronizerPhase};
use crate::store::{JobState, Store};

/// Top-level rows per page, and rows shown under one open row: the first
/// screen of a 100,000-row structure reads a few hundred rows, not all.
pub const PAGE: usize = 200;
const UNDER_ONE_ROW: usize = 500;

pub(super) async fn serve_page(
    segments: &[&str],
    asked: &Asked,
    ui: &Ui,
    person: &Person,
) -> Result<Reply, WebError> {
    match segments {
        [] => overview_page(asked, ui, person).await,
        ["structures", ns, name] => {
            structure_page(&format!("{ns}/{name}"), asked, ui, person).await
        }
        ["structures", ns, name, "history"] => {
            history_page(&format!("{ns}/{name}"), ui, person).await
        }
        ["synchronizers", ns, name] => synchronizer_page(&format!("{ns}/{name}"), ui, person).await,
        ["plans"] if ui.cluster().is_some() => held_plans_page(ui, person).await,
        ["plans"] => plans_page(ui, person).await,
        ["jobs"] => jobs_page(ui, person).await,
        ["runs", id] => {
            let run = id.parse().ok().and_then(|id| ui.run(id));
            let run =
                run.ok_or_else(|| WebError::not_found(format!("this UI started no run {id}")))?;
            Ok(run_page(&run, ui, person))
        }
        ["jobs", id] => {
            let id = id
                .parse()
                .map_err(|_| WebError::not_found(format!("{id} is not a job number")))?;
            job_page(id, ui, person).await
        }
        _ => Err(WebError::not_found("there is no such page")),
    }
}

fn structure_link(id: &str) -> String {
    format!(r#"<a href="/structures/{0}">{0}</a>"#, esc(id))
}

async fn overview_page(asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let mut rows = Vec::new();
    let mut visible = HashMap::new();
    for row in overview(&store, &catalog)? {
        if !visible.contains_key(&row.structure) {
            let may = ui.may(person, Verb::View, &row.structure).await?;
            visible.insert(row.structure.clone(), may);
        }
        if visible[&row.structure] {
            rows.push(row);
        }
    }
    let namespaces: BTreeSet<&str> = rows.iter().map(|r| r.namespace.as_str()).collect();
    let only = asked.param("namespace");
    let mut body = String::from(r#"<p class="filter">Namespace: <a href="/">all</a>"#);
    for ns in &namespaces {
        let current = if only == Some(ns) {
            r#" aria-current="page""#
        } else {
            ""
        };
        let _ = write!(
            body,
            r#" <a href="/?namespace={}"{current}>{}</a>"#,
            url(ns),
            esc(ns)
        );
    }
    body.push_str(
        "</p>\n<table class=\"overview\"><thead><tr><th>Synchronizer</th><th>Structure</th><th>Type</th><th>Directions</th><th>Status</th><th>Last sync</th><th>Held</th><th>Needs</th><th></th></tr></thead><tbody>\n",
    );
    for row in rows
        .iter()
        .filter(|r| only.is_none_or(|ns| ns == r.namespace))
    {
        let directions: Vec<&str> = row.directions.iter().map(|d| d.as_str()).collect();
        let mut actions = format!(
            r#"<a href="/synchronizers/{}">troubleshoot</a>"#,
            esc(&row.id)
        );
        if row.phase == SynchronizerPhase::RestartRequired {
            actions.push(' ');
            actions.push_str(&button(
                &format!("/synchronizers/{}/release", row.id),
                &ui.csrf,
                &[("action", "restart")],
                "Restart",
            ));
        }
        // In a cluster, as in Backbone's overview: start and stop.
        if ui.cluster().is_some() {
            let (value, label) = if row.enabled {
                ("false", "Stop")
            } else {
                ("true", "Start")
            };
            actions.push(' ');
            actions.push_str(&button(
                &format!("/synchronizers/{}/enabled", row.id),
                &ui.csrf,
                &[("enabled", value)],
                label,
            ));
        }
        let _ = writeln!(
            body,
            r#"<tr data-synchronizer="{id}"><td>{id}</td><td>{structure}</td><td>{kind}</td><td>{directions}</td><td><span class="phase {phase}">{phase}</span></td><td>{last}</td><td>{held}</td><td>{problem}</td><td>{actions}</td></tr>"#,
            id = esc(&row.id),
            structure = structure_link(&row.structure),
            kind = row.kind,
            directions = directions.join(", "),
            phase = row.phase,
            last = time(row.last_sync),
            held = row.held,
            problem = esc(row.problem.as_deref().unwrap_or_default()),
        );
    }
    body.push_str("</tbody></table>\n");
    if rows.is_empty() {
        body.push_str("<p>No synchronizer is declared on a structure you may view.</p>");
    }
    if ui.cluster().is_none() {
        body.push_str(
            "<p class=\"note\">Whether a synchronizer runs is declared (<code>enabled</code> in its YAML, which Git keeps); a synchronizer the cycle guard stopped is restarted here.</p>",
        );
    }
    Ok(Reply::Html(ui.page("Overview", Some(person), &body)))
}

/// One row as the tree shows it, with the rows shown under it.
struct Node {
    row: Row,
    /// Rows under it; `None` when it is closed.
    children: Option<Vec<Node>>,
    /// How many rows are directly under it.
    count: usize,
}

/// What the tree page is asked to show.
struct TreeView<'a> {
    structure: &'a str,
    open: BTreeSet<RowId>,
    from: usize,
}

impl TreeView<'_> {
    /// The page's address with `open` as given.
    fn link(&self, open: &BTreeSet<RowId>, from: usize) -> String {
        let ids: Vec<String> = open.iter().map(ToString::to_string).collect();
        let mut link = format!("/structures/{}?open={}", self.structure, ids.join(","));
        if from > 0 {
            let _ = write!(link, "&from={from}");
        }
        link
    }
}

fn open_rows(asked: &Asked) -> BTreeSet<RowId> {
    asked
        .param("open")
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| id.parse().ok())
        .collect()
}

async fn structure_page(
    id: &str,
    asked: &Asked,
    ui: &Ui,
    person: &Person,
) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let id = catalog.resolve(Kind::Structure, id)?;
    ui.allow(person, Verb::View, &id).await?;
    let declared = catalog
        .structure(&id)
        .ok_or_else(|| WebError::not_found(format!("structure {id} is not declared")))?;
    let mut body = String::new();
    if let Some(portfolio) = &declared.resource.spec.portfolio {
        body.push_str("<p>A portfolio of:</p><ul>");
        for member in &portfolio.structure_refs {
            let member = crate::spec::ObjectId::referenced(&declared.resource, &member.name);
            let _ = write!(body, "<li>{}</li>", structure_link(&member.to_string()));
        }
        body.push_str("</ul>");
        return Ok(Reply::Html(ui.page(&id, Some(person), &body)));
    }
    let tracker = declared.resource.tracker_id().unwrap_or_default();
    let version = store.structure_version(&id)?;
    let view = TreeView {
        structure: &id,
        open: open_rows(asked),
        from: asked
            .param("from")
            .and_then(|f| f.parse().ok())
            .unwrap_or(0),
    };
    let _ = write!(
        body,
        r#"<p class="meta">Version {version} · tracker {tracker} · <a href="/structures/{id}/history">history</a></p>
<form class="search" method="get" action="/structures/{id}"><label>Find <input type="search" name="q" value="{q}" placeholder="key or text"></label> <button type="submit">Find</button></form>
"#,
        id = esc(&id),
        tracker = esc(&tracker),
        q = esc(asked.param("q").unwrap_or_default()),
    );
    if let Some(text) = asked.param("q") {
        body.push_str(&search_results(&store, &view, &tracker, text)?);
    }
    let (nodes, top) = tree_nodes(&store, &view)?;
    let mut keys = Vec::new();
    collect_keys(&nodes, &mut keys);
    let issues: HashMap<String, Issue> = store
        .mirror_issues_of(&tracker, &keys)?
        .into_iter()
        .map(|i| (i.key.clone(), i))
        .collect();
    let back = view.link(&view.open, view.from);
    let _ = write!(
        body,
        r#"<ul class="tree" role="tree" aria-label="{id}" data-structure="{id}" data-back="{back}">"#,
        id = esc(&id),
        back = esc(&back),
    );
    render_nodes(&mut body, &nodes, &issues, &view);
    body.push_str("</ul>\n");
    let shown_to = view.from + nodes.len();
    if view.from > 0 || shown_to < top {
        let _ = write!(
            body,
            r#"<p class="pages">Top-level rows {}–{shown_to} of {top}"#,
            view.from + 1
        );
        if view.from > 0 {
            let _ = write!(
                body,
                r#" · <a href="{}">previous</a>"#,
                esc(&view.link(&view.open, view.from.saturating_sub(PAGE)))
            );
        }
        if shown_to < top {
            let _ = write!(
                body,
                r#" · <a href="{}" rel="next">next</a>"#,
                esc(&view.link(&view.open, shown_to))
            );
        }
        body.push_str("</p>\n");
    }
    let _ = write!(
        body,
        r#"<form class="move" method="post" action="/structures/{id}/move">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="back" value="{back}">
<fieldset><legend>Move a row</legend>
<label>Row <input name="key" required placeholder="KEY or folder/"></label>
<label>under <input name="under" placeholder="KEY (empty: top level)"></label>
<label>after <input name="after" placeholder="KEY (empty: by rank)"></label>
<button type="submit">Move</button></fieldset></form>
<p class="note">Drag a row onto another to put it under that row; hold Shift to put it right after. With a row focused: Alt+↓ after the next row, Alt+↑ before the previous, Alt+→ under the previous, Alt+← out of its parent. Moves are journaled with you as the author.</p>
"#,
        id = esc(&id),
        csrf = esc(&ui.csrf),
        back = esc(&back),
    );
    Ok(Reply::Html(ui.page(&id, Some(person), &body)))
}

/// The rows to show: a page of the top level, and under each open row its
/// first rows. Returns them and the number of top-level rows.
fn tree_nodes<S: Store>(store: &S, view: &TreeView) -> Result<(Vec<Node>, usize), WebError> {
    let top = store.children(view.structure, None)?;
    let total = top.len();
    let rows: Vec<Row> = top.into_iter().skip(view.from).take(PAGE).collect();
    Ok((nodes_of(store, view, rows)?, total))
}

fn nodes_of<S: Store>(store: &S, view: &TreeView, rows: Vec<Row>) -> Result<Vec<Node>, WebError> {
    rows.into_iter()
        .map(|row| {
            let (children, count) = if view.open.contains(&row.id) {
                let under = store.children(view.structure, Some(row.id))?;
                let count = under.len();
                let shown = under.into_iter().take(UNDER_ONE_ROW).collect();
                (Some(nodes_of(store, view, shown)?), count)
            } else {
                (None, store.child_count(view.structure, row.id)?)
            };
            Ok(Node {
                row,
                children,
                count,
            })
        })
        .collect()
}

fn collect_keys<'a>(nodes: &'a [Node], keys: &mut Vec<&'a str>) {
    for node in nodes {
        if let Some(key) = node.row.item.issue_key() {
            keys.push(key);
        }
        if let Some(children) = &node.children {
            collect_keys(children, keys);
        }
    }
}

/// What the move form and the script call a row: its key, or `NAME/`.
fn row_name(item: &RowItem) -> String {
    match item {
        RowItem::Issue(key) => key.clone(),
        RowItem::Folder(name) => format!("{name}/"),
    }
}

fn render_nodes(
    html: &mut String,
    nodes: &[Node],
    issues: &HashMap<String, Issue>,
    view: &TreeView,
) {
    for node in nodes {
        let open = node.children.is_some();
        let mut toggled = view.open.clone();
        if open {
            toggled.remove(&node.row.id);
        } else {
            toggled.insert(node.row.id);
        }
        let toggle = if node.count == 0 {
            r#"<span class="toggle"></span>"#.to_owned()
        } else {
            format!(
                r#"<a class="toggle" href="{}#row-{}" aria-label="{} {}">{}</a>"#,
                esc(&view.link(&toggled, view.from)),
                node.row.id,
                if open { "collapse" } else { "expand" },
                node.count,
                if open { "▾" } else { "▸" },
            )
        };
        let expanded = match (node.count, open) {
            (0, _) => "",
            (_, true) => r#" aria-expanded="true""#,
            (_, false) => r#" aria-expanded="false""#,
        };
        let content = match &node.row.item {
            RowItem::Folder(name) => format!(r#"<span class="folder">{}/</span>"#, esc(name)),
            RowItem::Issue(key) => match issues.get(key) {
                Some(issue) => format!(
                    r#"<span class="key">{}</span> <span class="type">{}</span> <span class="summary">{}</span> <span class="status">{}</span>"#,
                    esc(key),
                    esc(&issue.issue_type),
                    esc(&issue.summary),
                    esc(&issue.status)
                ),
                None => format!(
                    r#"<span class="key">{}</span> <span class="summary missing">not read yet</span>"#,
                    esc(key)
                ),
            },
        };
        let _ = write!(
            html,
            r#"<li role="treeitem" id="row-{id}" data-row="{name}" draggable="true" tabindex="0"{expanded}><span class="line">{toggle} {content}</span>"#,
            id = node.row.id,
            name = esc(&row_name(&node.row.item)),
        );
        if let Some(children) = &node.children {
            html.push_str(r#"<ul role="group">"#);
            render_nodes(html, children, issues, view);
            html.push_str("</ul>");
            if node.count > children.len() {
                let _ = write!(
                    html,
                    r#"<p class="more">and {} more rows under it; find one by key</p>"#,
                    node.count - children.len()
                );
            }
        }
        html.push_str("</li>");
    }
}

/// Issues whose key or summary matches, each with the path to its row and
/// a link that opens the tree there.
fn search_results<S: Store>(
    store: &S,
    view: &TreeView,
    tracker: &str,
    text: &str,
) -> Result<String, WebError> {
    const SHOWN: usize = 50;
    let mut html = String::from(r#"<section class="results"><h2>Found</h2><ol>"#);
    let mut found = 0;
    let mut top = None;
    for issue in store.search_mirror(tracker, text.trim(), SHOWN * 4)? {
        let Some(placed) = store.find_row(view.structure, &RowItem::Issue(issue.key.clone()))?
        else {
            continue;
        };
        let ancestors = store.ancestors(view.structure, placed.row.id)?;
        let open: BTreeSet<RowId> = ancestors.iter().copied().collect();
        // The page of the top level that holds the row's top ancestor (the
        // top level is read once, for the first result).
        let top_row = ancestors.last().copied().unwrap_or(placed.row.id);
        if top.is_none() {
            top = Some(store.children(view.structure, None)?);
        }
        let from = top
            .iter()
            .flatten()
            .position(|r| r.id == top_row)
            .map_or(0, |i| i / PAGE * PAGE);
        let _ = write!(
            html,
            r#"<li><a href="{}#row-{}"><span class="key">{}</span> {}</a> <span class="depth">at depth {}</span></li>"#,
            esc(&view.link(&open, from)),
            placed.row.id,
            esc(&issue.key),
            esc(&issue.summary),
            ancestors.len() + 1,
        );
        found += 1;
        if found == SHOWN {
            break;
        }
    }
    if found == 0 {
        let _ = write!(
            html,
            "<li>No issue in this structure matches {}.</li>",
            esc(text)
        );
    }
    html.push_str("</ol></section>\n");
    Ok(html)
}

async fn history_page(id: &str, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let id = catalog.resolve(Kind::Structure, id)?;
    ui.allow(person, Verb::View, &id).await?;
    // An undo is planned with the tracker's key: the command line's, or in
    // a cluster a Resync's (`trellis undo` there).
    let undo = ui.cluster().is_none();
    let entries = history(&store, &id)?;
    let mut body = format!(
        "<p class=\"meta\">{}</p><table class=\"history\"><thead><tr><th>Version</th><th>Time</th><th>Author</th><th>Cause</th><th>Change</th><th>Job</th></tr></thead><tbody>\n",
        structure_link(&id)
    );
    let mut undo_offered = BTreeSet::new();
    for entry in entries.iter().rev() {
        let job = match entry.job {
            Some(job) if undo && undo_offered.insert(job) => format!(
                r#"<a href="/jobs/{job}">{job}</a> {}"#,
                button("/undo", &ui.csrf, &[("job", &job.to_string())], "Plan undo")
            ),
            Some(job) => format!(r#"<a href="/jobs/{job}">{job}</a>"#),
            None => String::new(),
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{job}</td></tr>",
            entry.version,
            time(Some(entry.time)),
            esc(&entry.author),
            esc(&entry.cause),
            esc(&entry.change),
        );
    }
    body.push_str("</tbody></table>\n");
    Ok(Reply::Html(ui.page(
        &format!("History of {id}"),
        Some(person),
        &body,
    )))
}

/// Every run `trellis apply` would make, each with its own approval.
async fn plans_page(ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let engine = Engine::new(store, person.name.clone());
    let mut body = String::new();
    for scope in engine.apply_order(&catalog)? {
        let run = engine.plan(&catalog, &scope).await?;
        let (title, name) = match &scope {
            crate::engine::Scope::Resync {
                resync: Some(resync),
                ..
            } => (format!("Resync {resync}"), resync.clone()),
            _ => ("The declarations".to_owned(), String::new()),
        };
        body.push_str(&plan_section(&title, &run, "/apply", &[("run", &name)], ui));
    }
    Ok(Reply::Html(ui.page("Plans", Some(person), &body)))
}

/// A planned run: its summary, destructive operations first, each
/// structure's outline diff, and a button approving exactly its hash.
pub(super) fn plan_section(
    title: &str,
    run: &Run,
    action: &str,
    fields: &[(&str, &str)],
    ui: &Ui,
) -> String {
    let set = &run.set;
    let mut html = format!(
        r#"<section class="plan" data-hash="{hash}"><h2>{title}</h2><p class="summary">Plan: {summary} · hash <code>{hash}</code></p>"#,
        hash = esc(&set.hash),
        title = esc(title),
        summary = esc(&set.summary.to_string()),
    );
    let destructive: Vec<String> = set
        .structures
        .iter()
        .flat_map(|p| p.destructive())
        .collect();
    if !destructive.is_empty() {
        html.push_str(r#"<div class="destructive"><h3>Destructive: needs your approval</h3><ul>"#);
        for op in &destructive {
            let _ = write!(html, "<li>{}</li>", esc(op));
        }
        html.push_str("</ul></div>");
    }
    for plan in &set.structures {
        for removal in &plan.mass_removals {
            let _ = write!(html, r#"<p class="error">{}</p>"#, esc(&removal.message));
        }
        if plan.outline_diff.is_empty() {
            continue;
        }
        let _ = write!(
            html,
            "<h3>{}</h3><pre class=\"diff\">",
            esc(&plan.structure)
        );
        for line in plan.outline_diff.lines() {
            let class = match line.chars().next() {
                Some('+') => "add",
                Some('-') => "remove",
                Some('@') => "hunk",
                _ => "same",
            };
            let _ = writeln!(html, r#"<span class="{class}">{}</span>"#, esc(line));
        }
        html.push_str("</pre>");
    }
    if set.has_changes() {
        let mut fields = fields.to_vec();
        fields.push(("hash", &set.hash));
        let label = if destructive.is_empty() {
            format!("Apply plan {}", &set.hash)
        } else {
            format!("Approve and apply plan {}", &set.hash)
        };
        html.push_str(&button(action, &ui.csrf, &fields, &label));
    } else {
        html.push_str("<p>No changes.</p>");
    }
    html.push_str("</section>\n");
    html
}

async fn jobs_page(ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let mut visible = HashMap::new();
    for structure in &catalog.structures {
        let id = structure.id();
        let may = ui.may(person, Verb::View, &id).await?;
        visible.insert(id, may);
    }
    let mut running = running(&store, &catalog, &visible)?;
    let going = ui.going();
    if !going.is_empty() {
        running.push_str("<h2>Started here</h2><ul class=\"runs\">");
        for run in going {
            let _ = write!(
                running,
                r#"<li><a href="/runs/{}">{}</a> by {}</li>"#,
                run.id,
                esc(&run.title),
                esc(&run.author)
            );
        }
        running.push_str("</ul>\n");
    }
    let mut body = running.clone();
    body.push_str(
        "<h2>Finished</h2><table class=\"jobs\"><thead><tr><th>Job</th><th>Structure</th><th>Synchronizer</th><th>Direction</th><th>Author</th><th>State</th><th>Summary</th><th>Finished</th></tr></thead><tbody>\n",
    );
    for job in store.recent_jobs(200)? {
        if !visible.contains_key(&job.structure) {
            let may = ui.may(person, Verb::View, &job.structure).await?;
            visible.insert(job.structure.clone(), may);
        }
        if !visible[&job.structure] {
            continue;
        }
        let _ = writeln!(
            body,
            r#"<tr class="{state}"><td><a href="/jobs/{id}">{id}</a></td><td>{structure}</td><td>{sync}</td><td>{direction}</td><td>{author}</td><td>{state}</td><td>{summary}</td><td>{finished}</td></tr>"#,
            id = job.id,
            structure = structure_link(&job.structure),
            sync = esc(job.synchronizer.as_deref().unwrap_or("-")),
            direction = job.direction.map_or("-", |d| d.as_str()),
            author = esc(&job.author),
            state = job.state.as_str(),
            summary = esc(&job.summary),
            finished = time(Some(job.finished)),
        );
    }
    body.push_str("</tbody></table>\n");
    // While something runs, the page follows it by itself.
    let refresh = (!running.is_empty()).then_some(2);
    Ok(Reply::Html(ui.page_refreshed(
        "Jobs",
        Some(person),
        &body,
        refresh,
    )))
}

/// What runs now on the structures `visible` lets the person see: the
/// holder of each held structure (a resync, or a pass of `trellis run` or
/// the controller), and in a cluster each Resync not yet done, with its
/// progress. Empty when nothing runs.
fn running<S: Store>(
    store: &S,
    catalog: &crate::spec::Catalog,
    visible: &HashMap<String, bool>,
) -> Result<String, WebError> {
    let seen = |id: &str| visible.get(id).copied().unwrap_or(false);
    let mut rows = String::new();
    for structure in &catalog.structures {
        let id = structure.id();
        if !seen(&id) {
            continue;
        }
        if let Some(holder) = store.structure_holder(&id)? {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>running</td><td></td></tr>",
                structure_link(&id),
                esc(&holder)
            );
        }
    }
    for resync in &catalog.resyncs {
        let status = resync.resource.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or(crate::spec::ResyncPhase::Pending);
        if matches!(
            phase,
            crate::spec::ResyncPhase::Succeeded | crate::spec::ResyncPhase::Failed
        ) {
            continue;
        }
        let sync = resync.resource.synchronizer_id();
        let Some(structure) = catalog
            .resolved_synchronizer(&sync)
            .map(|r| r.structure.clone())
            .filter(|s| seen(s))
        else {
            continue;
        };
        let progress = match (status.done, status.total) {
            (Some(done), Some(total)) => {
                format!(r#"<progress value="{done}" max="{total}"></progress> {done} of {total}"#)
            }
            _ => String::new(),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>Resync {}{}</td><td>{phase}</td><td>{progress}</td></tr>",
            structure_link(&structure),
            esc(&resync.id()),
            status
                .requested_by
                .map(|by| format!(", asked by {}", esc(&by)))
                .unwrap_or_default(),
        );
    }
    if rows.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "<h2>Running now</h2><table class=\"running\"><thead><tr><th>Structure</th><th>Run</th><th>Phase</th><th>Progress</th></tr></thead><tbody>{rows}</tbody></table>\n"
    ))
}

async fn job_page(id: u64, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let job = store
        .job(id)?
        .ok_or_else(|| WebError::not_found(format!("there is no job {id}")))?;
    ui.allow(person, Verb::View, &job.structure).await?;
    let mut body = format!(
        r#"<dl class="job"><dt>Structure</dt><dd>{}</dd><dt>Synchronizer</dt><dd>{}</dd><dt>Author</dt><dd>{}</dd><dt>State</dt><dd class="{state}">{state}</dd><dt>Summary</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd>"#,
        structure_link(&job.structure),
        esc(job.synchronizer.as_deref().unwrap_or("-")),
        esc(&job.author),
        esc(&job.summary),
        time(Some(job.started)),
        time(Some(job.finished)),
        state = job.state.as_str(),
    );
    if let Some(error) = &job.error {
        let _ = write!(
            body,
            r#"<dt>Error</dt><dd class="error">{}</dd>"#,
            esc(error)
        );
    }
    body.push_str("</dl>");
    let changes: Vec<_> = history(&store, &job.structure)?
        .into_iter()
        .filter(|e| e.job == Some(id))
        .collect();
    let _ = write!(
        body,
        "<h2>{} changes</h2><ol class=\"changes\">",
        changes.len()
    );
    for change in &changes {
        let _ = write!(body, "<li>{}</li>", esc(&change.change));
    }
    body.push_str("</ol>");
    if job.state != JobState::Failed && !changes.is_empty() && ui.cluster().is_none() {
        body.push_str(&button(
            "/undo",
            &ui.csrf,
            &[("job", &id.to_string())],
            "Plan undo",
        ));
    }
    Ok(Reply::Html(ui.page(
        &format!("Job {id}"),
        Some(person),
        &body,
    )))
}

/// A synchronizer's held issues, with retry, skip and keep-the-structure,
/// and a restart when the cycle guard stopped it.
async fn synchronizer_page(id: &str, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let id = catalog.resolve(Kind::Synchronizer, id)?;
    let row = overview(&store, &catalog)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| WebError::not_found(format!("synchronizer {id} is not declared")))?;
    ui.allow(person, Verb::View, &row.structure).await?;
    let action = format!("/synchronizers/{id}/release");
    let mut body = format!(
        r#"<p class="meta">Structure {} · <span class="phase {phase}">{phase}</span> · last sync {}</p>"#,
        structure_link(&row.structure),
        time(row.last_sync),
        phase = row.phase,
    );
    if let Some(problem) = &row.problem {
        let _ = write!(body, r#"<p class="error">{}</p>"#, esc(problem));
    }
    if row.phase == SynchronizerPhase::RestartRequired {
        body.push_str(&button(
            &action,
            &ui.csrf,
            &[("action", "restart")],
            "Restart",
        ));
    }
    let held = store.held_issues(&id)?;
    let _ = write!(body, "<h2>Held issues ({})</h2>", held.len());
    if !held.is_empty() {
        body.push_str("<table class=\"held\"><thead><tr><th>Issue</th><th>Kind</th><th>Operation</th><th>Message</th><th>Attempts</th><th>Since</th><th></th></tr></thead><tbody>");
        for issue in &held {
            let key = issue.issue.as_str();
            let released = match issue.release {
                Some(release) => format!("{release:?} at the next pass"),
                None => [
                    ("retry", "Retry"),
                    ("skip", "Skip"),
                    ("keep-structure", "Keep the structure's side"),
                ]
                .iter()
                .map(|(what, label)| {
                    button(&action, &ui.csrf, &[("action", what), ("key", key)], label)
                })
                .collect::<Vec<_>>()
                .join(" "),
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{released}</td></tr>",
                esc(key),
                issue.kind,
                esc(&issue.operation),
                esc(&issue.message),
                issue.attempts,
                time(Some(issue.first_seen)),
            );
        }
        body.push_str("</tbody></table>");
    }
    Ok(Reply::Html(ui.page(&id, Some(person), &body)))
}

/// The controller's sign-in page: a token, kept in a cookie only this UI
/// reads.
pub(super) fn sign_in(asked: &Asked, ui: &Ui) -> String {
    let why = asked
        .param("why")
        .map(|why| format!(r#"<p class="error">{}</p>"#, esc(why)))
        .unwrap_or_default();
    format!(
        r#"{why}<form class="sign-in" method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label>Your Kubernetes bearer token<br><textarea name="token" rows="4" cols="80" required autocomplete="off"></textarea></label>
<p><button type="submit">Sign in</button></p></form>
<p class="note">The cluster checks the token (TokenReview) and, for each page and action, what you may do (SubjectAccessReview: <code>get</code>, <code>edit</code> or <code>control</code> on <code>structures</code>). A token for yourself: <code>kubectl create token NAME</code> for a ServiceAccount, or your kubeconfig's.</p>"#,
        csrf = esc(&ui.csrf),
    )
}

/// In a cluster: the plans Resyncs and Synchronizers hold for approval, as
/// their status shows them; approving one sets its `spec.approvedPlan` to
/// exactly that hash, as you.
async fn held_plans_page(ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let mut held = Vec::new();
    for resync in &catalog.resyncs {
        let status = resync.resource.status.as_ref();
        if status.and_then(|s| s.phase) != Some(crate::spec::ResyncPhase::AwaitingApproval) {
            continue;
        }
        let sync = resync.resource.synchronizer_id();
        if let (Some(plan), Some(resolved)) = (
            status.and_then(|s| s.plan.as_ref()),
            catalog.resolved_synchronizer(&sync),
        ) {
            held.push((
                "resync",
                resync.id(),
                resolved.structure.clone(),
                plan.clone(),
            ));
        }
    }
    for sync in &catalog.synchronizers {
        let plan = sync
            .resource
            .status
            .as_ref()
            .and_then(|s| s.held_plan.clone());
        if let (Some(plan), Some(resolved)) = (plan, catalog.resolved_synchronizer(&sync.id())) {
            held.push(("synchronizer", sync.id(), resolved.structure.clone(), plan));
        }
    }
    let mut body = String::new();
    for (holder, id, structure, plan) in held {
        if !ui.may(person, Verb::View, &structure).await? {
            continue;
        }
        let kind = if holder == "resync" {
            "Resync"
        } else {
            "Synchronizer"
        };
        let _ = write!(
            body,
            r#"<section class="plan" data-hash="{hash}"><h2>{kind} {id}</h2><p class="summary">On {structure}: {summary} · hash <code>{hash}</code>{destructive}</p>"#,
            hash = esc(&plan.hash),
            id = esc(&id),
            structure = structure_link(&structure),
            summary = esc(&plan.summary),
            destructive = if plan.destructive {
                " · <strong class=\"error\">destructive</strong>"
            } else {
                ""
            },
        );
        if let Some(diff) = &plan.diff_excerpt {
            let _ = write!(body, r#"<pre class="diff">{}</pre>"#, esc(diff));
        }
        body.push_str(&button(
            "/approve",
            &ui.csrf,
            &[("holder", holder), ("id", &id), ("hash", &plan.hash)],
            &format!("Approve plan {}", plan.hash),
        ));
        body.push_str("</section>\n");
    }
    if body.is_empty() {
        body.push_str("<p>No plan waits for approval on a structure you may view.</p>");
    }
    Ok(Reply::Html(ui.page(
        "Plans awaiting approval",
        Some(person),
        &body,
    )))
}

/// A run the UI started: its progress while it runs (the page reloads
/// itself every second), then what it did.
fn run_page(run: &super::runs::UiRun, ui: &Ui, person: &Person) -> Reply {
    use super::runs::Outcome;
    let counts = run.progress.counts();
    let bar = |what: &str, done: u64, total: u64| {
        format!(
            r#"<p class="progress">{what}: <progress value="{done}" max="{total}"></progress> <span class="counts">{done} of {total}</span></p>"#,
            total = total.max(done),
        )
    };
    let outcome = run.outcome();
    let state = match &outcome {
        None => "running",
        Some(Outcome::Applied(_)) => "succeeded",
        Some(Outcome::Failed(_)) => "failed",
    };
    let mut body = format!(
        r#"<dl class="job"><dt>Started by</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>State</dt><dd class="state {state}">{state}</dd></dl>{}{}"#,
        esc(&run.author),
        time(Some(run.started)),
        bar("Tracker writes", counts.tracker_done, counts.tracker_total),
        bar("Rows", counts.rows_done, counts.rows_total),
    );
    match &outcome {
        None => {}
        Some(Outcome::Applied(structures)) => {
            body.push_str("<ul>");
            for (structure, version) in structures {
                let _ = write!(
                    body,
                    "<li>{} is at version {version}</li>",
                    structure_link(structure)
                );
            }
            body.push_str("</ul><p><a href=\"/jobs\">All jobs</a></p>");
        }
        Some(Outcome::Failed(error)) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(error));
        }
    }
    let refresh = outcome.is_none().then_some(1);
    Reply::Html(ui.page_refreshed(&run.title, Some(person), &body, refresh))
}
