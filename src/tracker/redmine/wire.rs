//! Redmine's JSON, as `/issues.json` sends it, and its mapping onto
//! [`Issue`]. Keys absent rather than null (`parent`, `assigned_to`, ...)
//! are optional here; `relations` is present (maybe empty) when asked for
//! with `include=relations`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Issue, Link};

#[derive(Deserialize)]
pub struct IssuePage {
    pub issues: Vec<WireIssue>,
    #[serde(default)]
    pub total_count: u64,
}

#[derive(Deserialize)]
pub struct WireIssue {
    pub id: u64,
    project: Named,
    pub tracker: Entity,
    pub status: Entity,
    #[serde(default)]
    priority: Option<Named>,
    subject: String,
    #[serde(default)]
    parent: Option<Id>,
    #[serde(default)]
    assigned_to: Option<Named>,
    #[serde(default)]
    fixed_version: Option<Named>,
    #[serde(default)]
    category: Option<Named>,
    pub updated_on: Option<jiff::Timestamp>,
    #[serde(default)]
    relations: Vec<Relation>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

/// Redmine stores a relation once, normalised (`blocked` as `blocks` with
/// the ends swapped, `relates` from the smaller id), and shows it on both
/// issues with the same `issue_id` / `issue_to_id`.
#[derive(Deserialize)]
struct Relation {
    issue_id: u64,
    issue_to_id: u64,
    relation_type: String,
}

#[derive(Deserialize)]
pub struct CurrentUser {
    pub user: User,
}

#[derive(Deserialize)]
pub struct User {
    pub login: String,
}

/// `/users/current.json?include=memberships`: who the key is and its roles.
#[derive(Deserialize)]
pub struct CurrentMember {
    pub user: Member,
}

#[derive(Deserialize)]
pub struct Member {
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub memberships: Vec<Membership>,
}

#[derive(Deserialize)]
pub struct Membership {
    pub project: Entity,
    pub roles: Vec<Entity>,
}

/// A project or role as Redmine names one.
#[derive(Deserialize)]
pub struct Entity {
    pub id: u64,
    pub name: String,
}

/// `/projects/:id.json`.
#[derive(Deserialize)]
pub struct ProjectOf {
    pub project: Entity,
}

/// `/roles/:id.json`.
#[derive(Deserialize)]
pub struct RoleOf {
    pub role: Role,
}

#[derive(Deserialize)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Redmine shows issues as `#123`; that is their key in Trellis.
pub fn key(id: u64) -> String {
    format!("#{id}")
}

/// The id of `#123` (or `123`).
pub fn id(key: &str) -> Option<u64> {
    key.strip_prefix('#').unwrap_or(key).parse().ok()
}

impl WireIssue {
    /// The common shape: Redmine's tracker is the issue type, and a
    /// relation becomes a link on the issue it starts from.
    pub fn into_issue(self) -> Issue {
        let mut fields = BTreeMap::new();
        fields.insert("project".to_owned(), self.project.name);
        for (name, value) in [
            ("priority", self.priority),
            ("assignee", self.assigned_to),
            ("version", self.fixed_version),
            ("category", self.category),
        ] {
            if let Some(value) = value {
                fields.insert(name.to_owned(), value.name);
            }
        }
        let mut links: Vec<Link> = self
            .relations
            .into_iter()
            .filter(|r| r.issue_id == self.id)
            .map(|r| Link {
                link_type: r.relation_type,
                target: key(r.issue_to_id),
            })
            .collect();
        links.sort();
        Issue {
            key: key(self.id),
            summary: self.subject,
            issue_type: self.tracker.name,
            status: self.status.name,
            parent: self.parent.map(|p| key(p.id)),
            epic: None,
            links,
            // Redmine has no rank: siblings follow issue ids, as in Redmine itself.
            rank: None,
            updated: self.updated_on,
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_map_onto_the_common_shape() {
        // As Redmine 5.0 answers `/issues.json?include=relations`.
        let page: IssuePage = serde_json::from_str(
            r#"{"issues":[{"id":2,"project":{"id":1,"name":"CI demo"},"tracker":{"id":1,"name":"Bug"},
            "status":{"id":1,"name":"New","is_closed":false},"priority":{"id":2,"name":"Normal"},
            "author":{"id":1,"name":"Redmine Admin"},"parent":{"id":1},"subject":"Child A",
            "description":"","start_date":"2026-11-21","due_date":null,"done_ratio":0,"is_private":false,
            "estimated_hours":null,"total_estimated_hours":null,"created_on":"2026-11-21T05:37:23Z",
            "updated_on":"2026-11-21T05:37:24Z","closed_on":null,
            "relations":[{"id":1,"issue_id":2,"issue_to_id":3,"relation_type":"precedes","delay":0},
                         {"id":2,"issue_id":7,"issue_to_id":2,"relation_type":"blocks","delay":null}]}],
            "total_count":1,"offset":0,"limit":100}"#,
        )
        .unwrap();
        let issue = page.issues.into_iter().next().unwrap().into_issue();
        assert_eq!(issue.key, "#2");
        assert_eq!(issue.issue_type, "Bug");
        assert_eq!(issue.parent.as_deref(), Some("#1"));
        assert_eq!(
            issue.links,
            vec![Link {
                link_type: "precedes".into(),
                target: "#3".into()
            }],
            "the relation #7 blocks #2 belongs to #7"
        );
        assert_eq!(issue.fields["project"], "CI demo");
        assert_eq!(issue.fields["priority"], "Normal");
        assert_eq!(issue.updated, Some("2026-11-21T05:37:24Z".parse().unwrap()));
    }

    #[test]
    fn keys_are_hash_numbers() {
        assert_eq!(key(12), "#12");
        assert_eq!(id("#12"), Some(12));
        assert_eq!(id("12"), Some(12));
        assert_eq!(id("PLAT-12"), None);
    }
}
