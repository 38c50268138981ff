//! How plans, structures and status read on a terminal and for tools
//! (pull-request comments are in `markdown.rs`).

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{HistoryEntry, Section};
use crate::model::{Forest, RowId, RowItem, Snapshot};
use crate::plan::{PlanSet, StructurePlan, TrackerOp, render_outline, visible};
use crate::spec::Catalog;
use crate::store::{JobDirection, JobRecord, JobState};

/// `trellis COMMAND -f FILE...`: the command that applies (or plans again)
/// what `plan` just showed (without `--approve`).
pub fn command(command: &str, files: &[PathBuf]) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|f| format!("-f {}", f.display()))
        .collect();
    format!("trellis {command} {}", files.join(" "))
}

/// The paths given to `-f`, for messages: `a, b`.
pub fn paths(files: &[PathBuf]) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    files.join(", ")
}

/// Whether colour may be used at all: no-color.org says only a `NO_COLOR`
/// that is set and not empty turns it off.
pub fn colour_wanted() -> bool {
    colour_allowed_by(std::env::var_os("NO_COLOR").as_deref())
}

fn colour_allowed_by(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour && colour_wanted() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The operations that need approval, one line each, for listing first.
pub(super) fn destructive(plan: &StructurePlan) -> Vec<String> {
    plan.destructive()
        .iter()
        .map(|line| visible(line))
        .collect()
}

/// The plan for a terminal: per structure the units, the outline diff and
/// tracker changes, then the totals, the hash and (given the command) how to
/// apply it.
pub fn plan_text(set: &PlanSet, apply: Option<&str>, colour: bool) -> String {
    let mut out = String::new();
    for plan in &set.structures {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!("Structure {} (tracker {})", plan.structure, plan.tracker),
                "1",
                colour
            )
        );
        if plan.summary.total() == 0 {
            let _ = writeln!(out, "  no changes");
        }
        for unit in &plan.units {
            let ops = unit.structure_ops.len() + unit.tracker_ops.len();
            let round = if unit.round > 1 {
                format!(", round {}", unit.round)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} {} ({}{round}): {}",
                unit.kind,
                unit.synchronizer,
                unit.direction,
                if ops == 0 {
                    "no changes".to_owned()
                } else {
                    format!("{ops} operation(s)")
                }
            );
            for note in &unit.notes {
                let _ = writeln!(out, "    note: {}", visible(note));
            }
        }
        if !plan.mass_removals.is_empty() {
            let _ = writeln!(
                out,
                "  {}",
                paint("Refused (too many removals):", "1;31", colour)
            );
            for refusal in &plan.mass_removals {
                let _ = writeln!(out, "    ! {}", visible(&refusal.message));
            }
        }
        let destructive = destructive(plan);
        if !destructive.is_empty() {
            let _ = writeln!(out, "  {}", paint("Destructive:", "1;31", colour));
            for line in destructive {
                let _ = writeln!(out, "    ! {line}");
            }
        }
        if !plan.outline_diff.is_empty() {
            for line in plan.outline_diff.lines() {
                let code = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => "32",
                    Some('-') if !line.starts_with("---") => "31",
                    Some('@') => "36",
                    _ => "0",
                };
                let _ = writeln!(out, "  {}", paint(line, code, colour && code != "0"));
            }
        }
        let tracker_ops: Vec<&TrackerOp> = plan.units.iter().flat_map(|u| &u.tracker_ops).collect();
        if !tracker_ops.is_empty() {
            let _ = writeln!(out, "  Tracker changes:");
            for op in tracker_ops {
                let mark = if op.is_destructive() { "!" } else { "~" };
                let _ = writeln!(out, "    {mark} {}", visible(&op.to_string()));
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Plan: {}", set.summary);
    if set.has_changes() {
        let _ = writeln!(out, "Plan hash: {}", set.hash);
        match apply {
            Some(apply) if set.summary.destructive > 0 => {
                let _ = writeln!(
                    out,
                    "To apply (destructive, needs approval): {apply} --approve {}",
                    set.hash
                );
            }
            Some(apply) => {
                let _ = writeln!(out, "To apply: {apply}");
            }
            None => {}
        }
    }
    out
}

/// `plan --output json`: the synchronizers' plan, and each pending
/// Resync's own plan (left out when there is none).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput<'a> {
    #[serde(flatten)]
    pub set: &'a PlanSet,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resyncs: Vec<ResyncPlan<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResyncPlan<'a> {
    pub resync: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<&'a str>,
    pub plan: &'a PlanSet,
}

/// How deep `show --output yaml|json` nests before refusing (each level is
/// a level of recursion when the tree is built and serialized).
pub const MAX_TREE_DEPTH: usize = 200;

/// A structure as a tree, for `show --output yaml|json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "type")]
    issue_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rows: Vec<TreeRow>,
}

/// The sections of `show` as one tree: a portfolio's structures each under
/// a folder row named after it.
pub fn tree(sections: &[Section]) -> Vec<TreeRow> {
    fn build(forest: &Forest, snapshot: &Snapshot, parent: Option<RowId>) -> Vec<TreeRow> {
        forest
            .children(parent)
            .iter()
            .map(|&id| {
                let item = &forest.row(id).expect("children exist").item;
                let issue = item.issue_key().and_then(|k| snapshot.get(k));
                TreeRow {
                    key: item.issue_key().map(str::to_owned),
                    folder: match item {
                        RowItem::Folder(name) => Some(name.clone()),
                        RowItem::Issue(_) => None,
                    },
                    issue_type: issue.map(|i| i.issue_type.clone()),
                    summary: issue.map(|i| i.summary.clone()),
                    status: issue.map(|i| i.status.clone()),
                    rows: build(forest, snapshot, Some(id)),
                }
            })
            .collect()
    }
    sections
        .iter()
        .flat_map(|section| {
            let rows = build(&section.forest, &section.snapshot, None);
            match &section.folder {
                None => rows,
                Some(name) => vec![TreeRow {
                    key: None,
                    folder: Some(name.clone()),
                    issue_type: None,
                    summary: None,
                    status: None,
                    rows,
                }],
            }
        })
        .collect()
}

/// The sections of `show` as an outline, a portfolio's structures indented
/// under a folder line each.
pub fn outline(sections: &[Section]) -> String {
    let mut out = String::new();
    for section in sections {
        let outline = render_outline(&section.forest, &section.snapshot);
        match &section.folder {
            None => out.push_str(&outline),
            Some(name) => {
                let _ = writeln!(out, "{name}/");
                for line in outline.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    }
    out
}

/// What `status` shows of a synchronizer's incremental sync.
#[derive(Default)]
pub struct SyncView {
    pub last_pass: Option<jiff::Timestamp>,
    pub held: usize,
    pub stopped: bool,
    /// The hash of the destructive plan its passes wait on.
    pub held_plan: Option<String>,
}

/// `trellis status`: a line per synchronizer. LAST SYNC is its last job or
/// incremental pass, whichever is later; ERRORS the last job's failure, the
/// issues a pass holds, a destructive plan held for approval, or the cycle
/// guard's stop.
pub fn status_table(
    catalog: &Catalog,
    jobs: &[JobRecord],
    views: &std::collections::HashMap<String, SyncView>,
) -> String {
    let mut rows = vec![
        [
            "SYNCHRONIZER",
            "STRUCTURE",
            "TYPE",
            "ENABLED",
            "LAST SYNC",
            "ERRORS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut syncs: Vec<_> = catalog.synchronizers.iter().collect();
    syncs.sort_by_key(|s| s.id());
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    for sync in syncs {
        let id = sync.id();
        let spec = &sync.resource.spec;
        let view = views.get(&id);
        let last = jobs
            .iter()
            .find(|j| j.synchronizer.as_deref() == Some(id.as_str()));
        let pass = view.and_then(|v| v.last_pass);
        let (last_sync, mut errors) = match last {
            Some(job) if job.state == JobState::Failed => (
                format!("failed {}", time(job.finished)),
                brief(job.error.as_deref().unwrap_or_default()),
            ),
            // Stopped between writing the tracker and recording it; a later
            // run journaled what it wrote.
            Some(job) if job.state == JobState::Interrupted => (
                format!("interrupted {}", time(job.finished)),
                brief(&job.summary),
            ),
            Some(job) if pass.is_none_or(|p| p < job.finished) => (
                format!(
                    "{} ({})",
                    time(job.finished),
                    job.direction.map_or("-", JobDirection::as_str)
                ),
                "0".to_owned(),
            ),
            _ => match pass {
                Some(pass) => (format!("{} (pass)", time(pass)), "0".to_owned()),
                None => ("never".to_owned(), "-".to_owned()),
            },
        };
        if let Some(view) = view {
            if view.stopped {
                errors = "stopped by the cycle guard (trellis troubleshoot)".into();
            } else if let Some(hash) = &view.held_plan {
                errors =
                    format!("destructive plan {hash} held for approval (trellis troubleshoot)");
            } else if view.held > 0 {
                errors = format!("{} held (trellis troubleshoot)", view.held);
            }
        }
        rows.push(vec![
            id,
            sync.resource.structure_id(),
            spec.type_.as_str().to_owned(),
            spec.enabled.to_string(),
            last_sync,
            errors,
        ]);
    }
    table(&rows)
}

/// A failure as a table cell: its first line, cut at a width a terminal
/// shows (the run that failed printed it whole).
fn brief(error: &str) -> String {
    const WIDTH: usize = 120;
    let line = visible(error.lines().next().unwrap_or_default());
    match line.char_indices().nth(WIDTH) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None if error.lines().nth(1).is_some() => format!("{line}…"),
        None => line,
    }
}

/// `trellis history`: a line per journal entry, oldest first.
pub fn history_table(entries: &[HistoryEntry]) -> String {
    let mut rows = vec![
        ["VERSION", "JOB", "TIME", "AUTHOR", "CAUSE", "CHANGE"]
            .map(String::from)
            .to_vec(),
    ];
    rows.extend(entries.iter().map(|e| {
        vec![
            e.version.to_string(),
            e.job.map_or_else(|| "-".to_owned(), |j| j.to_string()),
            e.time.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            e.author.clone(),
            e.cause.clone(),
            e.change.clone(),
        ]
    }));
    table(&rows)
}

/// Rows of cells in left-aligned columns, the first row being the heading.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| visible(&r[c]).chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{:<w$}", visible(cell)))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    out
}

/// One line per tracker whose issues `show` took from the store: when they
/// were read, and how to read them now.
pub fn issues_as_read(sections: &[Section], now: jiff::Timestamp) -> Vec<String> {
    let mut notes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for section in sections {
        let Some(at) = section.read_at else { continue };
        if seen.insert(&section.tracker) {
            notes.push(format!(
                "issues of tracker {} as read {} ({} ago); `--refresh` reads them now",
                section.tracker,
                at.strftime("%Y-%m-%d %H:%M:%SZ"),
                ago(now.duration_since(at))
            ));
        }
    }
    notes
}

/// A duration in its largest whole unit: "40 s", "3 min", "5 h", "2 days".
fn ago(elapsed: jiff::SignedDuration) -> String {
    let seconds = elapsed.as_secs().max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_non_empty_no_color_turns_colour_off() {
        assert!(colour_allowed_by(None));
        assert!(colour_allowed_by(Some("".as_ref())), "NO_COLOR= is unset");
        assert!(!colour_allowed_by(Some("1".as_ref())));
    }

    #[test]
    fn a_long_failure_is_one_short_line_in_the_status_table() {
        let huge = format!(
            "tracker t: 500 Internal Server Error: {}",
            "<html>".repeat(9000)
        );
        let cell = brief(&huge);
        assert_eq!(cell.chars().count(), 121, "{cell}");
        assert!(cell.starts_with("tracker t: 500") && cell.ends_with('…'));
        assert_eq!(brief("first\nsecond"), "first…");
        assert_eq!(brief("short"), "short");
    }

    #[test]
    fn ages_are_in_their_largest_whole_unit() {
        let ago = |s: i64| super::ago(jiff::SignedDuration::from_secs(s));
        assert_eq!(ago(-3), "0 s", "a clock a little behind is not the future");
        assert_eq!(ago(59), "59 s");
        assert_eq!(ago(60 * 59 + 59), "59 min");
        assert_eq!(ago(3600 * 5), "5 h");
        assert_eq!(ago(86400 * 2 + 5), "2 days");
    }
}
