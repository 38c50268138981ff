//! The structure outline (one line per row) and its unified diff: what a
//! reviewer reads to see which rows appear, move or vanish.

use std::fmt::Write;

use similar::{Algorithm, TextDiff};

use crate::model::{Forest, RowItem, Snapshot};

/// One line per row: indentation by depth, then key, type, summary and status
/// for an issue (`PLAT-4 [Story] Migrate invoices (In Progress)`), or the
/// folder name with a trailing slash.
pub fn render_outline(forest: &Forest, snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(forest.len() * 64);
    for (id, depth) in forest.walk() {
        let row = forest.row(id).expect("walked rows exist");
        for _ in 0..depth {
            out.push_str("  ");
        }
        match &row.item {
            RowItem::Folder(name) => {
                let _ = writeln!(out, "{name}/");
            }
            RowItem::Issue(key) => match snapshot.get(key) {
                Some(i) => {
                    let _ = writeln!(out, "{key} [{}] {} ({})", i.issue_type, i.summary, i.status);
                }
                None => {
                    let _ = writeln!(out, "{key} (not in the tracker)");
                }
            },
        }
    }
    out
}

/// A unified diff between two outlines, empty when they are equal. Patience
/// diffing anchors on the unique lines (every issue appears once), which keeps
/// it fast and readable on structures with 100,000 rows.
pub(super) fn diff(structure: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::configure()
        .algorithm(Algorithm::Patience)
        .diff_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("{structure} (current)"),
            &format!("{structure} (planned)"),
        )
        .to_string()
}
