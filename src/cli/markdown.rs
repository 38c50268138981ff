//! Plans as pull-request comments, in the manner of Atlantis: a section per
//! structure and per synchronizer with its summary line, destructive
//! operations first, the outline diff in a collapsible block, the exact
//! command to apply or approve, units without changes folded into one line,
//! and the whole split into comments that fit GitHub's and GitLab's limits.

use std::fmt::Write;

use crate::plan::{PlanSet, StructurePlan, Summary, UnitPlan, visible};

/// Each comment stays under this many characters (GitHub allows 65,536).
pub const COMMENT_LIMIT: usize = 60_000;

/// Room kept in every comment for its marker and continuation heading.
const HEADING_ROOM: usize = 200;

/// The marker that starts every comment, so a CI job can find and update
/// the comments of an earlier plan instead of adding new ones.
pub const MARKER: &str = "<!-- trellis-plan";

/// The plan as one or more comments, each under [`COMMENT_LIMIT`] characters.
/// `apply` is the command that applies it and `replan` the one that plans again.
pub fn plan_comments(set: &PlanSet, apply: &str, replan: &str) -> Vec<String> {
    let budget = COMMENT_LIMIT - HEADING_ROOM;
    let mut blocks = vec![format!("## Trellis plan\n\n**{}**\n", set.summary)];
    let (quiet, changed): (Vec<&StructurePlan>, Vec<&StructurePlan>) =
        set.structures.iter().partition(|p| p.summary.total() == 0);
    for plan in changed {
        blocks.extend(structure_blocks(plan, budget));
    }
    if !quiet.is_empty() {
        let names: Vec<String> = quiet.iter().map(|p| format!("`{}`", p.structure)).collect();
        blocks.push(format!("No changes: {}\n", names.join(", ")));
    }
    blocks.push(footer(set, apply, replan));
    let comments = pack(blocks, budget);
    let total = comments.len();
    comments
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let heading = if i == 0 {
                String::new()
            } else {
                format!("## Trellis plan (continued, {} of {total})\n\n", i + 1)
            };
            format!("{MARKER} {} of {total} -->\n{heading}{body}", i + 1)
        })
        .collect()
}

fn structure_blocks(plan: &StructurePlan, budget: usize) -> Vec<String> {
    let mut blocks = vec![format!(
        "### Structure `{}`\n\n{}\n",
        plan.structure, plan.summary
    )];
    for refusal in &plan.mass_removals {
        blocks.push(format!(
            "> [!CAUTION]\n> **Refused:** {}\n",
            text(&refusal.message)
        ));
    }
    let destructive = super::render::destructive(plan);
    if !destructive.is_empty() {
        let lines: Vec<String> = destructive
            .iter()
            .map(|l| format!("- :warning: {}\n", code(l)))
            .collect();
        blocks.extend(list(
            "**Destructive, needs approval:**\n\n",
            &lines,
            "\n",
            budget,
        ));
    }
    let mut quiet = Vec::new();
    for (name, runs) in by_synchronizer(plan) {
        let summary = Summary::count(runs.iter().copied());
        let first = runs[0];
        let title = format!("{} `{name}` ({})", first.kind, first.direction);
        let notes: Vec<&String> = runs.iter().flat_map(|u| &u.notes).collect();
        if summary.total() == 0 && notes.is_empty() {
            quiet.push(title);
            continue;
        }
        let mut block = format!("#### {title}\n\n{summary}\n");
        for note in notes {
            let _ = writeln!(block, "- note: {}", text(note));
        }
        blocks.push(block);
    }
    if !quiet.is_empty() {
        blocks.push(format!("No changes: {}\n", quiet.join(", ")));
    }
    if !plan.outline_diff.is_empty() {
        let lines: Vec<String> = plan
            .outline_diff
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        // The outline escapes control characters, so no line is split;
        // a fence longer than any run of backticks in it cannot be closed
        // by tracker text.
        let fence = "`".repeat(longest_backtick_run(&plan.outline_diff).max(2) + 1);
        let parts = list("", &lines, "", budget - 100);
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let label = if count == 1 {
                String::new()
            } else {
                format!(" (part {} of {count})", i + 1)
            };
            blocks.push(format!(
                "<details><summary>Outline diff{label}</summary>\n\n{fence}diff\n{part}{fence}\n\n</details>\n"
            ));
        }
    }
    let tracker: Vec<String> = plan
        .units
        .iter()
        .flat_map(|u| &u.tracker_ops)
        .map(|op| format!("- {}\n", code(&op.to_string())))
        .collect();
    if !tracker.is_empty() {
        blocks.extend(list("**Tracker changes:**\n\n", &tracker, "\n", budget));
    }
    blocks
}

/// Tracker text as Markdown text that shows exactly its characters: control
/// characters escaped (no raw newline can start a line of its own, such as
/// a forged "approved" comment), and every character Markdown or HTML would
/// act on (backticks, `<`, `*`, `[`, ...) as a numeric character reference.
fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in visible(raw).chars() {
        if c.is_ascii_punctuation()
            && !matches!(
                c,
                '-' | '.' | ',' | ':' | '/' | '(' | ')' | '=' | '\'' | '?' | '@' | '+' | ';' | '%'
            )
        {
            let _ = write!(out, "&#{};", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Tracker text in monospace: an HTML `<code>` element, inside which
/// character references still stand for their characters (a Markdown code
/// span would show them raw and cannot hold every backtick).
fn code(raw: &str) -> String {
    format!("<code>{}</code>", text(raw))
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A structure's unit runs grouped by synchronizer, in first-run order
/// (a synchronizer that ran in several rounds is one section).
fn by_synchronizer(plan: &StructurePlan) -> Vec<(&str, Vec<&UnitPlan>)> {
    let mut groups: Vec<(&str, Vec<&UnitPlan>)> = Vec::new();
    for unit in &plan.units {
        match groups
            .iter_mut()
            .find(|(name, _)| *name == unit.synchronizer)
        {
            Some((_, runs)) => runs.push(unit),
            None => groups.push((&unit.synchronizer, vec![unit])),
        }
    }
    groups
}

fn footer(set: &PlanSet, apply: &str, replan: &str) -> String {
    if !set.has_changes() {
        return format!("Nothing to apply. To plan again: `{replan}`\n");
    }
    let (what, command) = if set.summary.destructive > 0 {
        (
            "To approve and apply this destructive plan",
            format!("{apply} --approve {}", set.hash),
        )
    } else {
        ("To apply", apply.to_owned())
    };
    format!(
        "Plan hash `{}`. {what}:\n\n```\n{command}\n```\n\nTo plan again: `{replan}`\n",
        set.hash
    )
}

/// `lines` under `head`, followed by `tail`, as one block or, when that is
/// larger than `budget`, as several blocks each repeating `head`.
fn list(head: &str, lines: &[String], tail: &str, budget: usize) -> Vec<String> {
    let room = budget.saturating_sub(head.len() + tail.len()).max(1);
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in lines {
        // A single line longer than the room is cut (it cannot be split sensibly).
        let line = if line.len() > room {
            truncate(line, room)
        } else {
            line.clone()
        };
        if !current.is_empty() && current.len() + line.len() > room {
            blocks.push(format!("{head}{current}{tail}"));
            current.clear();
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        blocks.push(format!("{head}{current}{tail}"));
    }
    blocks
}

fn truncate(line: &str, room: usize) -> String {
    let cut = (0..=room.saturating_sub(2))
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…\n", &line[..cut])
}

/// Blocks packed in order into as few comments as fit `budget` each.
fn pack(blocks: Vec<String>, budget: usize) -> Vec<String> {
    let mut comments = vec![String::new()];
    for block in blocks {
        let current = comments.last_mut().expect("one comment at least");
        if !current.is_empty() && current.len() + block.len() + 1 > budget {
            comments.push(block);
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(&block);
        }
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_split_into_blocks_that_fit() {
        let lines: Vec<String> = (0..1000).map(|i| format!("- line {i}\n")).collect();
        let blocks = list("head\n", &lines, "tail\n", 500);
        assert!(blocks.len() > 10);
        assert!(
            blocks
                .iter()
                .all(|b| b.len() <= 500 && b.starts_with("head\n") && b.ends_with("tail\n"))
        );
        let joined: String = blocks.iter().map(|b| &b[5..b.len() - 5]).collect();
        assert_eq!(joined, lines.concat(), "no line is lost or repeated");
    }

    #[test]
    fn packing_keeps_order_and_budget() {
        let blocks: Vec<String> = (0..50)
            .map(|i| format!("{i:03}{}\n", "x".repeat(96)))
            .collect();
        let comments = pack(blocks, 1000);
        assert!(comments.len() > 5 && comments.iter().all(|c| c.len() <= 1000));
        let order: Vec<usize> = comments
            .iter()
            .flat_map(|c| c.lines().filter(|l| !l.is_empty()))
            .map(|l| l[..3].parse().unwrap())
            .collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
    }
}
