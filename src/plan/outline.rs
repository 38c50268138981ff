//! The structure outline (one line per row) and its unified diff: what a
//! reviewer reads to see which rows appear, move or vanish.

use std::fmt::Write;

use foldhash::HashMap;
use similar::{Algorithm, ChangeTag, capture_diff_slices, group_diff_ops};

use crate::model::{Forest, RowId, RowItem, Snapshot};

/// One line per row: indentation by depth, then key, type, summary and status
/// for an issue (`PLAT-4 [Story] Migrate invoices (In Progress)`), or the
/// folder name with a trailing slash.
pub fn render_outline(forest: &Forest, snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(forest.len() * 64);
    for (id, depth) in forest.walk() {
        write_line(
            &mut out,
            &forest.row(id).expect("walked rows exist").item,
            depth,
            snapshot,
        );
    }
    out
}

fn write_line(out: &mut String, item: &RowItem, depth: usize, snapshot: &Snapshot) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    match item {
        RowItem::Folder(name) => {
            push_visible(out, name);
            out.push('/');
        }
        RowItem::Issue(key) => {
            push_visible(out, key);
            match snapshot.get(key) {
                Some(i) => {
                    out.push_str(" [");
                    push_visible(out, &i.issue_type);
                    out.push_str("] ");
                    push_visible(out, &i.summary);
                    out.push_str(" (");
                    push_visible(out, &i.status);
                    out.push(')');
                }
                None => out.push_str(" (not in the tracker)"),
            }
        }
    }
    out.push('\n');
}

/// `text` with its control characters shown as `push_visible` shows them.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_visible(&mut out, text);
    out
}

/// Tracker text with control characters shown as `\u{..}` escapes: a newline
/// in a summary must not start a line of its own in a diff a reviewer reads
/// (it could pass for a `+` or `-` line), nor an escape sequence reach a terminal.
fn push_visible(out: &mut String, text: &str) {
    if !text.chars().any(char::is_control) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
}

/// The unified diff between the outline of the rows `before` (in display
/// order, with depths) and that of `after` (two lines of context), empty when
/// they are equal. Rows removed on the way are named by `removed`; every
/// other row is still in `after`.
///
/// Rows are compared as (row, depth) pairs in display order, which is what
/// decides their outline lines, and only the lines of the hunks are rendered:
/// a 1 % change on 100,000 rows renders a few thousand lines, not 200,000.
/// Patience diffing anchors on the unique rows, which keeps moves readable.
pub(super) fn diff(
    structure: &str,
    before: &[(RowId, usize)],
    removed: &HashMap<RowId, &RowItem>,
    after: &Forest,
    snapshot: &Snapshot,
) -> String {
    let new = after.walk();
    if before == new.as_slice() {
        return String::new();
    }
    let item = |id: RowId| match after.row(id) {
        Some(row) => &row.item,
        None => removed[&id],
    };
    let ops = capture_diff_slices(Algorithm::Patience, before, &new);
    let mut out = format!("--- {structure} (current)\n+++ {structure} (planned)\n");
    for group in group_diff_ops(ops, 2) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let (old_start, old_end) = (first.old_range().start, last.old_range().end);
        let (new_start, new_end) = (first.new_range().start, last.new_range().end);
        let _ = writeln!(
            out,
            "@@ -{} +{} @@",
            hunk_range(old_start, old_end),
            hunk_range(new_start, new_end)
        );
        for op in &group {
            for change in op.iter_changes(before, &new) {
                let (id, depth) = change.value();
                let sign = match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                };
                out.push(sign);
                write_line(&mut out, item(id), depth, snapshot);
            }
        }
    }
    out
}

/// A unified-diff range: 1-based start and length; an empty range names the
/// line before it.
fn hunk_range(start: usize, end: usize) -> String {
    let len = end - start;
    if len == 0 {
        format!("{start},0")
    } else {
        format!("{},{len}", start + 1)
    }
}
