//! Where each field of a YAML document is, so that errors found after
//! parsing (a dangling reference, a bad query) can name the file and line.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Field path (`spec.filter.query`, `spec.directions[1]`) → 1-based line.
#[derive(Clone, Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes one YAML document. A document that does not parse gives an
    /// empty index: the typed parse reports the syntax error with its line.
    /// A key given twice is indexed at its second line, where the typed
    /// parse reports it, so that error names the field too.
    pub fn of(document: &str) -> LineIndex {
        let mut index = LineIndex::default();
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
        if let Ok(node) = serde_saphyr::from_str_with_options::<Spanned<Node>>(document, options) {
            index.visit("", &node);
        }
        index
    }

    fn visit(&mut self, path: &str, node: &Spanned<Node>) {
        self.lines
            .entry(path.to_owned())
            .or_insert(node.referenced.line() as usize);
        match &node.value {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let child = if path.is_empty() {
                        key.value.clone()
                    } else {
                        format!("{path}.{}", key.value)
                    };
                    // A field's line is its key's line, which is where people look.
                    self.lines
                        .insert(child.clone(), key.referenced.line() as usize);
                    self.visit(&child, value);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.visit(&format!("{path}[{i}]"), item);
                }
            }
            Node::Scalar => {}
        }
    }

    /// The line of `path`, or of its closest ancestor that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    /// The deepest field path on `line` (to name the field of a parse error).
    pub fn field_at(&self, line: usize) -> Option<&str> {
        self.lines
            .iter()
            .filter(|(path, l)| **l == line && !path.is_empty())
            .map(|(path, _)| path.as_str())
            .max_by_key(|path| (path.matches(['.', '[']).count(), *path))
    }
}

/// A YAML node that remembers only its shape; locations live in `Spanned`.
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Splits a YAML stream into documents at `---` lines, each with the line
/// number (0-based) it starts after, so per-document lines map back to the file.
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut documents = Vec::new();
    let mut start_line = 0;
    let mut start_byte = 0;
    let mut byte = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            documents.push((start_line, &text[start_byte..byte]));
            start_line = number + 1;
            start_byte = byte + line.len();
        }
        byte += line.len();
    }
    documents.push((start_line, &text[start_byte..]));
    documents
        .into_iter()
        .filter(|(_, doc)| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_to_their_key_lines() {
        let doc =
            "kind: A\nspec:\n  filter:\n    query: x = 1\n  directions:\n    - into\n    - from\n";
        let index = LineIndex::of(doc);
        assert_eq!(index.line("spec.filter.query"), Some(4));
        assert_eq!(index.line("spec.directions[1]"), Some(7));
        assert_eq!(
            index.line("spec.filter.under.folder"),
            Some(3),
            "falls back to the closest ancestor"
        );
        assert_eq!(index.field_at(4), Some("spec.filter.query"));
    }

    #[test]
    fn documents_keep_their_file_lines() {
        let text = "# header\n---\nkind: A\n---\n\n# only a comment\n---\nkind: B\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], (2, "kind: A\n"));
        assert_eq!(docs[1], (7, "kind: B\n"));
    }
}
