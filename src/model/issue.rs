//! Issues as every tracker reports them: the common shape the planner works on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One issue, as read from a tracker.
///
/// `parent` is the tracker's own parent field (Jira Cloud's `fields.parent` at
/// every level, Redmine's `parent.id`, the local tracker's `parent`); `epic`
/// is kept separately because Jira Data Center stores it in the Epic Link field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    pub key: String,
    pub summary: String,
    #[serde(rename = "type")]
    pub issue_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// An orderable key: sibling order follows the byte order of ranks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<jiff::Timestamp>,
    /// Free fields for grouping and filtering (component, priority, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// A typed, directed link from the issue that holds it to `target`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[serde(rename = "type")]
    pub link_type: String,
    pub target: String,
}

/// The coarse state every tracker's statuses fall into (Jira's status categories).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StatusCategory {
    ToDo,
    InProgress,
    Done,
}

impl StatusCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCategory::ToDo => "To Do",
            StatusCategory::InProgress => "In Progress",
            StatusCategory::Done => "Done",
        }
    }
}

impl Issue {
    /// The project is the key's prefix, as in Jira (`PLAT-12` → `PLAT`).
    pub fn project(&self) -> &str {
        self.key
            .rsplit_once('-')
            .map_or(self.key.as_str(), |(project, _)| project)
    }

    /// Status category by the conventional names; trackers that report a
    /// category of their own map it onto these names when they read issues.
    pub fn status_category(&self) -> StatusCategory {
        match self.status.to_ascii_lowercase().as_str() {
            "done" | "closed" | "resolved" | "rejected" | "won't do" | "cancelled" => {
                StatusCategory::Done
            }
            "to do" | "todo" | "open" | "new" | "backlog" | "selected for development" => {
                StatusCategory::ToDo
            }
            _ => StatusCategory::InProgress,
        }
    }

    /// Sibling order among issues placed by a synchronizer: rank, then key in
    /// natural order (`PLAT-9` before `PLAT-10`), then the key itself, so
    /// that no two issues tie (`X-1` and `X-01`) and plans are reproducible.
    pub fn order_key(&self) -> (Option<&str>, &str, u64, &str) {
        let (project, number) = split_key(&self.key);
        (self.rank.as_deref(), project, number, &self.key)
    }
}

/// Splits `PLAT-12` into (`PLAT`, 12) and Redmine's `#12` into (`#`, 12);
/// keys without a number sort by text.
pub fn split_key(key: &str) -> (&str, u64) {
    if let Some(number) = key.strip_prefix('#').and_then(|n| n.parse().ok()) {
        return ("#", number);
    }
    match key.rsplit_once('-') {
        Some((project, n)) => match n.parse() {
            Ok(number) => (project, number),
            Err(_) => (key, 0),
        },
        None => (key, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(key: &str, status: &str) -> Issue {
        Issue {
            key: key.into(),
            summary: String::new(),
            issue_type: "Task".into(),
            status: status.into(),
            parent: None,
            epic: None,
            links: vec![],
            rank: None,
            updated: None,
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn project_is_the_key_prefix() {
        assert_eq!(issue("PLAT-12", "Done").project(), "PLAT");
        assert_eq!(issue("MY-APP-3", "Done").project(), "MY-APP");
    }

    #[test]
    fn keys_order_naturally() {
        let mut keys = [issue("PLAT-10", "x"), issue("PLAT-9", "x")];
        keys.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        assert_eq!(keys[0].key, "PLAT-9");
        let mut keys = [issue("#10", "x"), issue("#9", "x")];
        keys.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        assert_eq!(keys[0].key, "#9");
    }

    #[test]
    fn status_categories_follow_common_names() {
        assert_eq!(
            issue("A-1", "Closed").status_category(),
            StatusCategory::Done
        );
        assert_eq!(issue("A-1", "Open").status_category(), StatusCategory::ToDo);
        assert_eq!(
            issue("A-1", "In Review").status_category(),
            StatusCategory::InProgress
        );
    }
}
