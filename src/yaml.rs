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
    (line, without_position(message).to_owned())
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
