//! Jira's JSON, as Cloud's REST v3 and Data Center's REST v2 send it, and
//! its mapping onto [`Issue`]. Field names are Jira's own (checked against
//! Atlassian's OpenAPI document by tests/jira.rs, which lists every field
//! read here); keys that Jira leaves out or sends as `null` are optional.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Issue, Link};

/// A page of `POST /rest/api/3/search/jql` (Cloud): no total, a token for
/// the next page until `isLast`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPage {
    #[serde(default)]
    pub issues: Vec<WireIssue>,
    pub next_page_token: Option<String>,
    pub is_last: Option<bool>,
}

/// A page of `POST /rest/api/2/search` (Data Center): offsets and a total;
/// `maxResults` is what the server granted, which may be less than asked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetPage {
    #[serde(default)]
    pub issues: Vec<WireIssue>,
    pub max_results: u64,
    pub total: u64,
}

/// `POST /rest/api/3/issue/bulkfetch`: keys not found or not visible are
/// left out of both lists.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkFetch {
    #[serde(default)]
    pub issues: Vec<WireIssue>,
    #[serde(default)]
    pub issue_errors: Vec<BulkError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkError {
    pub id: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Deserialize)]
pub struct WireIssue {
    pub key: String,
    pub fields: WireFields,
}

#[derive(Deserialize)]
pub struct WireFields {
    #[serde(default)]
    summary: String,
    status: Option<Status>,
    pub issuetype: Option<IssueType>,
    parent: Option<Parent>,
    #[serde(default)]
    issuelinks: Vec<WireLink>,
    updated: Option<String>,
    priority: Option<Named>,
    assignee: Option<User>,
    /// Custom fields (rank, Epic Link), by the ids found in `/field`.
    #[serde(flatten)]
    custom: BTreeMap<String, Value>,
}

/// An issue read for its type alone (`?fields=issuetype`).
#[derive(Deserialize)]
pub struct TypeOnly {
    pub issuetype: Option<IssueType>,
}

#[derive(Deserialize)]
pub struct Status {
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueType {
    pub name: String,
    #[serde(default)]
    pub subtask: bool,
    /// −1 sub-task, 0 standard, 1 epic, 2 and up above epics (Cloud).
    pub hierarchy_level: Option<i32>,
}

impl IssueType {
    fn is_epic(&self) -> bool {
        self.hierarchy_level == Some(1) || self.name.eq_ignore_ascii_case("epic")
    }
}

#[derive(Deserialize)]
struct Parent {
    key: String,
    fields: Option<ParentFields>,
}

#[derive(Deserialize)]
struct ParentFields {
    issuetype: Option<IssueType>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    display_name: String,
}

/// One entry of `fields.issuelinks`: only the other issue is named, as
/// `outwardIssue` when this issue is the link's outward end (“this blocks
/// that”), as `inwardIssue` when it is the inward one (“is blocked by”):
/// that link is the other issue's, and is read there.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireLink {
    pub id: String,
    #[serde(rename = "type")]
    pub link_type: LinkType,
    pub outward_issue: Option<KeyOnly>,
}

#[derive(Deserialize)]
pub struct LinkType {
    pub name: String,
}

#[derive(Deserialize)]
pub struct KeyOnly {
    pub key: String,
}

/// `GET /rest/api/{3|2}/field`.
#[derive(Deserialize)]
pub struct Field {
    pub id: String,
    pub schema: Option<FieldSchema>,
}

#[derive(Deserialize)]
pub struct FieldSchema {
    pub custom: Option<String>,
}

/// `GET /rest/api/{3|2}/myself`: Cloud names accounts by id and email,
/// Data Center by user name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Myself {
    pub email_address: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub account_id: Option<String>,
}

/// `GET /rest/api/{3|2}/mypermissions`: each asked permission, by key.
#[derive(Deserialize)]
pub struct MyPermissions {
    pub permissions: BTreeMap<String, UserPermission>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPermission {
    pub name: Option<String>,
    #[serde(default)]
    pub have_permission: bool,
}

/// `GET /rest/api/{3|2}/issue/{key}/transitions`.
#[derive(Deserialize)]
pub struct Transitions {
    pub transitions: Vec<Transition>,
}

#[derive(Deserialize)]
pub struct Transition {
    pub id: String,
    pub to: Status,
}

/// The 207 answer of `PUT /rest/agile/1.0/issue/rank`: one entry per issue.
#[derive(Deserialize)]
pub struct RankResults {
    pub entries: Vec<RankEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RankEntry {
    pub issue_key: String,
    pub status: u16,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The custom fields Trellis reads, by their ids on this site.
#[derive(Clone, Debug, Default)]
pub struct CustomFields {
    /// `com.pyxis.greenhopper.jira:gh-lexo-rank`.
    pub rank: Option<String>,
    /// `com.pyxis.greenhopper.jira:gh-epic-link` (Data Center).
    pub epic_link: Option<String>,
}

pub const RANK_FIELD: &str = "com.pyxis.greenhopper.jira:gh-lexo-rank";
pub const EPIC_LINK_FIELD: &str = "com.pyxis.greenhopper.jira:gh-epic-link";

impl CustomFields {
    /// Finds the fields by schema type, never by id: ids differ per site.
    pub fn find(fields: &[Field]) -> CustomFields {
        let by_type = |custom: &str| {
            fields
                .iter()
                .find(|f| f.schema.as_ref().and_then(|s| s.custom.as_deref()) == Some(custom))
                .map(|f| f.id.clone())
        };
        CustomFields {
            rank: by_type(RANK_FIELD),
            epic_link: by_type(EPIC_LINK_FIELD),
        }
    }
}

/// Jira's timestamps: `2021-01-18T23:45:00.000+0000` (an offset without a
/// colon, which RFC 3339 parsers refuse).
pub fn timestamp(text: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", text)
        .and_then(|t| t.to_timestamp())
        .or_else(|_| text.parse())
        .ok()
}

/// How an issue's parent and epic are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpicModel {
    /// Cloud: `fields.parent` at every level; a parent that is an epic is
    /// also the issue's epic.
    Parent,
    /// Data Center: `parent` only for sub-tasks; the epic is the Epic Link
    /// custom field's value (the epic's key).
    EpicLink,
}

impl WireIssue {
    pub fn into_issue(self, custom: &CustomFields, model: EpicModel) -> Issue {
        let f = self.fields;
        let mut fields = BTreeMap::new();
        if let Some(priority) = f.priority {
            fields.insert("priority".to_owned(), priority.name);
        }
        if let Some(assignee) = f.assignee {
            fields.insert("assignee".to_owned(), assignee.display_name);
        }
        // This issue is the outward end: “this <type> target”.
        let mut links: Vec<Link> = f
            .issuelinks
            .into_iter()
            .filter_map(|l| {
                l.outward_issue.map(|o| Link {
                    link_type: l.link_type.name,
                    target: o.key,
                })
            })
            .collect();
        links.sort();
        links.dedup();
        let text = |id: &Option<String>| {
            id.as_ref()
                .and_then(|id| f.custom.get(id))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let epic = match model {
            EpicModel::Parent => f
                .parent
                .as_ref()
                .filter(|p| {
                    p.fields
                        .as_ref()
                        .and_then(|pf| pf.issuetype.as_ref())
                        .is_some_and(IssueType::is_epic)
                })
                .map(|p| p.key.clone()),
            EpicModel::EpicLink => text(&custom.epic_link),
        };
        Issue {
            key: self.key,
            summary: f.summary,
            issue_type: f.issuetype.map(|t| t.name).unwrap_or_default(),
            status: f.status.map(|s| s.name).unwrap_or_default(),
            parent: f.parent.map(|p| p.key),
            epic,
            links,
            rank: text(&custom.rank),
            updated: f.updated.as_deref().and_then(timestamp),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_timestamps_parse_with_their_colonless_offsets() {
        assert_eq!(
            timestamp("2021-01-18T23:45:00.000+0000"),
            Some("2021-01-18T23:45:00Z".parse().unwrap())
        );
        assert_eq!(
            timestamp("2021-01-19T10:45:00.123+1100"),
            Some("2021-01-18T23:45:00.123Z".parse().unwrap())
        );
        assert_eq!(timestamp("yesterday"), None);
    }

    fn fields() -> Vec<Field> {
        serde_json::from_str(
            r#"[{"id":"summary","schema":{"type":"string","system":"summary"}},
                {"id":"customfield_10019","schema":{"type":"any","custom":"com.pyxis.greenhopper.jira:gh-lexo-rank","customId":10019}},
                {"id":"customfield_10987","schema":{"type":"any","custom":"com.pyxis.greenhopper.jira:gh-epic-link","customId":10987}},
                {"id":"customfield_10011","schema":{"type":"string","custom":"com.pyxis.greenhopper.jira:gh-epic-label","customId":10011}}]"#,
        )
        .unwrap()
    }

    #[test]
    fn custom_fields_are_found_by_schema_type() {
        let custom = CustomFields::find(&fields());
        assert_eq!(custom.rank.as_deref(), Some("customfield_10019"));
        assert_eq!(custom.epic_link.as_deref(), Some("customfield_10987"));
    }

    #[test]
    fn cloud_parents_at_every_level_and_epics_through_them() {
        let custom = CustomFields::find(&fields());
        let story: WireIssue = serde_json::from_str(
            r#"{"id":"10002","key":"PLAT-2","fields":{"summary":"Story","status":{"name":"In Progress"},
            "issuetype":{"name":"Story","subtask":false,"hierarchyLevel":0},
            "parent":{"id":"10001","key":"PLAT-1","fields":{"summary":"Epic","issuetype":{"name":"Epic","hierarchyLevel":1}}},
            "issuelinks":[{"id":"100","type":{"id":"1","name":"Blocks","inward":"is blocked by","outward":"blocks"},"outwardIssue":{"key":"PLAT-3"}},
                          {"id":"101","type":{"id":"1","name":"Blocks","inward":"is blocked by","outward":"blocks"},"inwardIssue":{"key":"PLAT-4"}}],
            "updated":"2026-11-21T09:00:00.000+0000","customfield_10019":"0|i0000f:","priority":null}}"#,
        )
        .unwrap();
        let issue = story.into_issue(&custom, EpicModel::Parent);
        assert_eq!(issue.parent.as_deref(), Some("PLAT-1"));
        assert_eq!(issue.epic.as_deref(), Some("PLAT-1"));
        assert_eq!(
            issue.links,
            vec![Link {
                link_type: "Blocks".into(),
                target: "PLAT-3".into()
            }],
            "PLAT-4 blocks PLAT-2: that link is PLAT-4's"
        );
        assert_eq!(issue.rank.as_deref(), Some("0|i0000f:"));
        assert_eq!(issue.updated, Some("2026-11-21T09:00:00Z".parse().unwrap()));
    }

    #[test]
    fn data_center_epics_come_from_the_epic_link_field() {
        let custom = CustomFields::find(&fields());
        let story: WireIssue = serde_json::from_str(
            r#"{"id":"10002","key":"OPS-2","fields":{"summary":"Story","status":{"name":"Open"},
            "issuetype":{"name":"Story","subtask":false},"customfield_10987":"OPS-1",
            "updated":"2026-11-21T09:00:00.000+0000"}}"#,
        )
        .unwrap();
        let issue = story.into_issue(&custom, EpicModel::EpicLink);
        assert_eq!(issue.parent, None);
        assert_eq!(issue.epic.as_deref(), Some("OPS-1"));
    }
}
