//! What the command-line test files share: a temporary copy of the
//! quickstart (and other examples) with a store of its own, and `trellis`
//! run inside it.

// Each test file is its own crate and uses a part of this module.
#![allow(dead_code)]

pub mod running;

use std::path::PathBuf;

use assert_cmd::Command;
use trellis::store::{SqliteStore, Store};

/// A copy of examples/quickstart in a temporary folder, with its own store.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let ws = Workspace {
            dir: tempfile::tempdir().unwrap(),
        };
        ws.copy_example("quickstart");
        ws
    }

    /// Copies examples/NAME next to the quickstart, as NAME.
    pub fn copy_example(&self, name: &str) {
        let target = self.dir.path().join(name);
        std::fs::create_dir(&target).unwrap();
        for entry in std::fs::read_dir(format!("examples/{name}")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state/trellis.db")
    }

    pub fn trellis(&self) -> Command {
        let mut cmd = Command::cargo_bin("trellis").unwrap();
        cmd.current_dir(self.dir.path())
            .env("TRELLIS_STATE", self.state())
            .env("TRELLIS_USER", "alice")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub fn edit(&self, name: &str, from: &str, to: &str) {
        let text = self.read(name);
        assert!(text.contains(from), "{name} has no `{from}`");
        std::fs::write(self.path(name), text.replacen(from, to, 1)).unwrap();
    }

    /// A declarations file of its own, next to the quickstart's issues.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn apply(&self) {
        self.trellis()
            .args(["apply", "-f", "quickstart"])
            .assert()
            .success();
    }

    /// Moves `key` under `parent` by hand and exports it with `children`:
    /// a job that wrote the tracker (PLAT-9 under PLAT-4, say).
    pub fn move_and_export(&self, key: &str, parent: &str) {
        self.trellis()
            .args(["move", "roadmap", key, "--under", parent])
            .assert()
            .success();
        self.trellis()
            .args(["export", "children", "-f", "quickstart"])
            .assert()
            .success();
    }

    /// One pass of `children` (the quickstart's two-way subtasks synchronizer).
    pub fn pass(&self) -> serde_json::Value {
        let out = self
            .trellis()
            .args([
                "sync",
                "--once",
                "-f",
                "quickstart",
                "children",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The parent of `key` in the quickstart's issues file.
    pub fn parent_in_file(&self, key: &str) -> Option<String> {
        let text = self.read("quickstart/issues.yaml");
        let start = text.find(&format!("key: {key}\n"))?;
        let block = &text[start..];
        let block = &block[..block[4..].find("key: ").map_or(block.len(), |i| i + 4)];
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix("parent: ").map(str::to_owned))
    }

    /// Sets `key`'s parent in the quickstart's issues file (as a person
    /// editing the tracker would), bumping its `updated` time.
    pub fn set_parent(&self, key: &str, parent: Option<&str>) {
        let text = self.read("quickstart/issues.yaml");
        self.write("quickstart/issues.yaml", &with_parent(&text, key, parent));
    }

    /// The parent row of `key`'s row in the quickstart's structure.
    pub fn row_parent(&self, key: &str) -> Option<String> {
        let forest = self.store().structure("default/roadmap").unwrap().forest;
        let row = forest.find_issue(key).expect("the row is there");
        forest
            .parent(row)
            .and_then(|p| forest.row(p))
            .map(|r| r.item.to_string())
    }

    pub fn store(&self) -> SqliteStore {
        SqliteStore::open_read_only(&self.state()).unwrap()
    }
}

/// An issues file's text with `key`'s parent set (or cleared) and its
/// `updated` time now, as a person editing the tracker would leave it.
pub fn with_parent(text: &str, key: &str, parent: Option<&str>) -> String {
    let start = text
        .find(&format!("  - key: {key}\n"))
        .unwrap_or_else(|| panic!("{key} is in the issues file"));
    let end = text[start + 4..]
        .find("  - key: ")
        .map_or(text.len(), |i| start + 4 + i);
    let mut block: Vec<String> = text[start..end]
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("parent:") && !l.trim_start().starts_with("updated:")
        })
        .map(str::to_owned)
        .collect();
    if let Some(parent) = parent {
        block.insert(1, format!("    parent: {parent}"));
    }
    block.insert(1, format!("    updated: {}", jiff::Timestamp::now()));
    let mut block = block.join("\n");
    block.push('\n');
    format!("{}{block}{}", &text[..start], &text[end..])
}

/// The parents set on the tracker that `history -o json` journaled.
pub fn journaled_parents(history_json: &[u8]) -> Vec<serde_json::Value> {
    let entries: serde_json::Value = serde_json::from_slice(history_json).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"]["op"] == "setParent")
        .cloned()
        .collect()
}
