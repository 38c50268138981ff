//! One way to report a serde-saphyr error: its line and a bare message.

/// The 1-based line (within the parsed text) and message of a YAML error,
/// without serde-saphyr's own "error: line N column M:" prefix and snippet
/// (callers print file and line themselves).
pub fn describe_error(error: &serde_saphyr::Error) -> (Option<usize>, String) {
    let line = error.location().map(|l| l.line() as usize);
    let text = error.without_snippet().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = match text.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, message)| message),
        None => text,
    };
    let message = text.lines().next().unwrap_or_default().trim();
    let message = match error.without_snippet() {
        serde_saphyr::Error::Budget { breach, .. } => over_budget(breach),
        // serde-saphyr's own wording ends in advice for programmers.
        serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!("`{key}` is given twice in the same mapping; keep one")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
            "a key is given twice in the same mapping; keep one".to_owned()
        }
        _ => without_position(message).to_owned(),
    };
    (line, message)
}

/// Whether the error is a limit on size or shape rather than a mistake.
pub fn is_over_budget(error: &serde_saphyr::Error) -> bool {
    matches!(error.without_snippet(), serde_saphyr::Error::Budget { .. })
}

/// A breached reading limit in words (serde-saphyr prints its Debug form).
fn over_budget(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    let what = match breach {
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => "has too many YAML nodes",
        BudgetBreach::Depth { .. } => "is nested too deeply",
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::MergeKeys { .. } => {
            "has too many aliases or anchors (the shape of a YAML bomb)"
        }
        BudgetBreach::Documents { .. } => "has too many documents",
        _ => "is too large",
    };
    format!("the YAML {what}; Trellis stopped reading it here")
}

/// The text of `bytes`, or the 1-based line of the first byte that is not
/// UTF-8 and a message saying so.
pub fn utf8(bytes: &[u8]) -> Result<&str, (usize, String)> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid.len() - valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        (
            line,
            format!("byte {column} of this line is not UTF-8 text; save the file as UTF-8"),
        )
    })
}

/// Drops a trailing "at line N, column M": that position counts lines within
/// one YAML document, not the file, and callers name the file's line.
fn without_position(message: &str) -> &str {
    let numbers = |tail: &str| {
        tail.split(", column ")
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match message.rsplit_once(" at line ") {
        Some((head, tail)) if numbers(tail) => head,
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_wording_is_replaced_by_our_own() {
        let err = serde_saphyr::from_str::<serde_json::Value>("a: 1\nb: 2\na: 3\n").unwrap_err();
        let (line, message) = super::describe_error(&err);
        assert_eq!(line, Some(3));
        assert_eq!(message, "`a` is given twice in the same mapping; keep one");

        let big = "- 1\n".repeat(300_000);
        let err = serde_saphyr::from_str::<serde_json::Value>(&big).unwrap_err();
        let (_, message) = super::describe_error(&err);
        assert!(super::is_over_budget(&err));
        assert!(!message.contains("Nodes {"), "{message}");
        assert!(message.contains("too many YAML nodes"), "{message}");

        assert_eq!(
            super::utf8(b"a: 1\nb: caf\xe9\n").unwrap_err(),
            (
                2,
                "byte 7 of this line is not UTF-8 text; save the file as UTF-8".to_owned()
            )
        );
    }

    #[test]
    fn message_loses_the_prefix_but_keeps_the_line() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Doc {
            a: u32,
        }
        let err = serde_saphyr::from_str::<Doc>("a: 1\nb: 2\n").unwrap_err();
        let (line, message) = super::describe_error(&err);
        assert_eq!(line, Some(2));
        assert!(message.starts_with("unknown field `b`"), "{message}");
        assert!(
            !message.contains("at line"),
            "one line number only: {message}"
        );
    }
}
