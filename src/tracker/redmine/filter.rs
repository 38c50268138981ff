//! A filter synchronizer's query on Redmine: a saved query (`query_id=8`) or
//! Redmine's own filter parameters, written as in an `/issues.json` URL:
//!
//! ```text
//! tracker_id=1&status_id=open
//! fixed_version_id=3&assigned_to_id=me
//! updated_on=>=2026-01-01&cf_4=backend
//! query_id=8
//! ```
//!
//! Values are written unencoded (`>=`, `|`, spaces); Trellis encodes them.
//! As in Redmine, `status_id` left out means open issues only.
//!
//! Redmine silently ignores a filter whose name it does not know and then
//! answers with every issue, which for a filter that removes rows would
//! empty the structure. So names are checked here against Redmine 5's issue
//! filters, and a saved query, which replaces every other filter in
//! Redmine, must stand alone.

use std::fmt;

/// A checked filter query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    SavedQuery(u64),
    Parameters(Vec<(String, String)>),
}

/// The issue filters of Redmine 5.0's `IssueQuery`, plus the relation types.
const FILTERS: &[&str] = &[
    "any_searchable",
    "assigned_to_id",
    "assigned_to_role",
    "attachment",
    "attachment_description",
    "author_id",
    "blocked",
    "blocks",
    "category_id",
    "child_id",
    "closed_on",
    "copied_from",
    "copied_to",
    "created_on",
    "description",
    "done_ratio",
    "due_date",
    "duplicated",
    "duplicates",
    "estimated_hours",
    "fixed_version.due_date",
    "fixed_version.status",
    "fixed_version_id",
    "follows",
    "is_private",
    "last_updated_by",
    "member_of_group",
    "notes",
    "parent_id",
    "precedes",
    "priority_id",
    "project.status",
    "project_id",
    "relates",
    "spent_time",
    "start_date",
    "status_id",
    "subject",
    "subproject_id",
    "total_estimated_hours",
    "tracker_id",
    "updated_by",
    "updated_on",
    "watcher_id",
];

/// Parameters Trellis sets itself.
const RESERVED: &[&str] = &[
    "offset", "limit", "page", "sort", "include", "key", "format", "nometa", "issue_id",
];

#[derive(Debug, PartialEq, Eq)]
pub struct FilterError(String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Filter {
    pub fn parse(query: &str) -> Result<Filter, FilterError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(FilterError(
                "the query is empty; give Redmine filter parameters such as `tracker_id=1&status_id=open`, or a saved query as `query_id=N`".into(),
            ));
        }
        let mut pairs = Vec::new();
        for part in query.split('&').map(str::trim) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(FilterError(format!(
                    "`{part}` is not `name=value`; write filters as in a Redmine URL, e.g. `status_id=open&tracker_id=1`"
                )));
            };
            let (name, value) = (name.trim(), value.trim());
            if RESERVED.contains(&name) {
                return Err(FilterError(format!(
                    "`{name}` is set by Trellis to read every page of the result; leave it out"
                )));
            }
            if name != "query_id" && !known(name) {
                let hint = match closest(name) {
                    Some(filter) => format!("did you mean `{filter}`?"),
                    None => format!(
                        "use one of {}, or cf_N for custom field N",
                        FILTERS.join(", ")
                    ),
                };
                return Err(FilterError(format!(
                    "`{name}` is not a Redmine issue filter, and Redmine would silently ignore it and match every issue; {hint}"
                )));
            }
            pairs.push((name.to_owned(), value.to_owned()));
        }
        match pairs.iter().position(|(name, _)| name == "query_id") {
            None => Ok(Filter::Parameters(pairs)),
            Some(_) if pairs.len() > 1 => Err(FilterError(
                "a saved query (`query_id`) replaces every other filter in Redmine; give either `query_id=N` alone or filter parameters".into(),
            )),
            Some(i) => pairs[i].1.parse().map(Filter::SavedQuery).map_err(|_| {
                FilterError(format!(
                    "query_id `{}` is not a number; saved queries are listed at /queries.json",
                    pairs[i].1
                ))
            }),
        }
    }
}

/// A standard filter, or a custom field (`cf_4`, also `project.cf_4`).
fn known(name: &str) -> bool {
    if FILTERS.contains(&name) {
        return true;
    }
    let field = name.rsplit_once('.').map_or(name, |(_, field)| field);
    field
        .strip_prefix("cf_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The known filter nearest to a misspelt name, if one is near.
fn closest(name: &str) -> Option<&'static str> {
    crate::tracker::nearest(name, FILTERS.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_raw_values() {
        assert_eq!(
            Filter::parse("tracker_id=1 & status_id=open&updated_on=>=2026-01-01&cf_4=a|b"),
            Ok(Filter::Parameters(vec![
                ("tracker_id".into(), "1".into()),
                ("status_id".into(), "open".into()),
                ("updated_on".into(), ">=2026-01-01".into()),
                ("cf_4".into(), "a|b".into()),
            ]))
        );
        assert_eq!(Filter::parse("query_id=8"), Ok(Filter::SavedQuery(8)));
    }

    #[test]
    fn unknown_or_reserved_names_and_mixed_saved_queries_are_refused() {
        let message = |q: &str| Filter::parse(q).unwrap_err().to_string();
        assert!(message("trackr_id=1").contains(
            "`trackr_id` is not a Redmine issue filter, and Redmine would silently ignore it and match every issue; did you mean `tracker_id`?"
        ));
        assert!(message("project = PLAT").contains("use one of any_searchable,"));
        assert!(message("limit=5").contains("set by Trellis"));
        assert!(message("query_id=8&status_id=*").contains("either `query_id=N` alone"));
        assert!(message("query_id=eight").contains("not a number"));
        assert!(message("status_id").contains("not `name=value`"));
        assert!(message("  ").contains("empty"));
    }
}
