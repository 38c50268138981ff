//! Filter queries answered from what this client has read already.
//!
//! A run reads the tracker's whole scope once (`snapshot`, every status),
//! or an incremental pass the issues changed since its watermark; a
//! filter's query that looks only at an issue's tracker and status then
//! needs no second read of the same issues: it is answered from those
//! reads, which is also the state the run plans from. Any other filter
//! (a saved query, a version, an assignee, a date...) is asked of Redmine.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::filter::Filter;
use super::wire::{self, WireIssue};

/// The tracker and status of each issue this client read.
#[derive(Default)]
pub(super) struct Seen(Mutex<Read>);

#[derive(Default)]
struct Read {
    issues: HashMap<u64, Facts>,
    /// The whole scope was read: a query over all of it can be answered.
    whole: bool,
}

#[derive(Clone, Copy)]
struct Facts {
    tracker: u64,
    status: u64,
}

/// A value of `status_id` or `tracker_id`, in Redmine's URL syntax.
#[derive(Debug, PartialEq)]
enum Values {
    Any,
    Open,
    Closed,
    In(Vec<u64>),
    NotIn(Vec<u64>),
}

/// A filter made only of what [`Seen`] knows.
#[derive(Debug, PartialEq)]
pub(super) struct Answerable {
    tracker: Values,
    status: Values,
}

impl Answerable {
    /// The filter, if every parameter is a tracker or status condition
    /// this module can judge. As in Redmine, no `status_id` means open.
    pub fn of(filter: &Filter) -> Option<Answerable> {
        let Filter::Parameters(params) = filter else {
            return None;
        };
        let mut answerable = Answerable {
            tracker: Values::Any,
            status: Values::Open,
        };
        for (name, value) in params {
            match name.as_str() {
                "tracker_id" => answerable.tracker = values(value, false)?,
                "status_id" => answerable.status = values(value, true)?,
                _ => return None,
            }
        }
        Some(answerable)
    }

    /// Whether it needs to know which statuses are closed.
    pub fn needs_closed(&self) -> bool {
        matches!(self.status, Values::Open | Values::Closed)
    }

    fn matches(&self, facts: Facts, closed: &HashSet<u64>) -> bool {
        let holds = |values: &Values, id: u64| match values {
            Values::Any => true,
            Values::Open => !closed.contains(&id),
            Values::Closed => closed.contains(&id),
            Values::In(ids) => ids.contains(&id),
            Values::NotIn(ids) => !ids.contains(&id),
        };
        holds(&self.tracker, facts.tracker) && holds(&self.status, facts.status)
    }
}

/// `*`, `open`/`o`, `closed`/`c` (statuses only), `1|2`, `!1|2`.
fn values(value: &str, status: bool) -> Option<Values> {
    let ids = |list: &str| -> Option<Vec<u64>> {
        list.split('|').map(|id| id.trim().parse().ok()).collect()
    };
    match value.trim() {
        "*" => Some(Values::Any),
        "open" | "o" if status => Some(Values::Open),
        "closed" | "c" if status => Some(Values::Closed),
        negated if negated.starts_with('!') => ids(&negated[1..]).map(Values::NotIn),
        listed => ids(listed).map(Values::In),
    }
}

impl Seen {
    /// A read of the whole scope: what was seen before is replaced.
    pub fn whole(&self, issues: &[WireIssue]) {
        let mut read = self.0.lock().expect("not poisoned");
        read.issues = issues.iter().map(|i| (i.id, facts(i))).collect();
        read.whole = true;
    }

    /// Issues read again (changed ones): they join what was seen.
    pub fn changed(&self, issues: &[WireIssue]) {
        let mut read = self.0.lock().expect("not poisoned");
        read.issues.extend(issues.iter().map(|i| (i.id, facts(i))));
    }

    /// Whether every issue asked about (the whole scope when `None`) was read.
    pub fn covers(&self, keys: Option<&[String]>) -> bool {
        let read = self.0.lock().expect("not poisoned");
        match keys {
            None => read.whole,
            Some(keys) => keys
                .iter()
                .all(|key| wire::id(key).is_some_and(|id| read.issues.contains_key(&id))),
        }
    }

    /// The keys the filter matches among `keys` (the whole scope when
    /// `None`), if every issue asked about was read; `closed` names the
    /// closed statuses when the filter needs them.
    pub fn answer(
        &self,
        filter: &Answerable,
        keys: Option<&[String]>,
        closed: &HashSet<u64>,
    ) -> Option<HashSet<String>> {
        let read = self.0.lock().expect("not poisoned");
        let matching = |id: u64, facts: Facts| filter.matches(facts, closed).then(|| wire::key(id));
        match keys {
            None if read.whole => Some(
                read.issues
                    .iter()
                    .filter_map(|(&id, &facts)| matching(id, facts))
                    .collect(),
            ),
            None => None,
            Some(keys) => keys
                .iter()
                .map(|key| {
                    let id = wire::id(key)?;
                    Some(matching(id, *read.issues.get(&id)?))
                })
                .collect::<Option<Vec<_>>>()
                .map(|found| found.into_iter().flatten().collect()),
        }
    }
}

fn facts(issue: &WireIssue) -> Facts {
    Facts {
        tracker: issue.tracker.id,
        status: issue.status.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answerable(query: &str) -> Option<Answerable> {
        Answerable::of(&Filter::parse(query).unwrap())
    }

    fn issue(id: u64, tracker: u64, status: u64) -> WireIssue {
        serde_json::from_value(serde_json::json!({
            "id": id, "project": {"id": 1, "name": "Demo"},
            "tracker": {"id": tracker, "name": "T"}, "status": {"id": status, "name": "S"},
            "subject": "an issue"
        }))
        .unwrap()
    }

    #[test]
    fn only_tracker_and_status_filters_are_answered_here() {
        assert!(answerable("status_id=*").is_some());
        assert!(answerable("tracker_id=2&status_id=*").is_some());
        assert!(answerable("tracker_id=1|2&status_id=!5").is_some());
        assert!(
            answerable("tracker_id=2").unwrap().needs_closed(),
            "open by default"
        );
        for asked in [
            "query_id=8",
            "fixed_version_id=3",
            "tracker_id=2&assigned_to_id=me",
            "status_id=>=2",
            "tracker_id=open",
        ] {
            assert_eq!(answerable(asked), None, "{asked} goes to Redmine");
        }
    }

    #[test]
    fn answers_follow_redmines_meaning_and_need_every_issue_read() {
        let seen = Seen::default();
        let closed: HashSet<u64> = [5].into();
        let keys = |answer: Option<HashSet<String>>| {
            let mut keys: Vec<String> = answer.unwrap().into_iter().collect();
            keys.sort();
            keys
        };
        let bugs_open = answerable("tracker_id=1").unwrap();
        assert!(!seen.covers(None), "nothing read yet");
        assert_eq!(seen.answer(&bugs_open, None, &closed), None);
        seen.whole(&[issue(1, 1, 1), issue(2, 1, 5), issue(3, 2, 1)]);
        assert_eq!(keys(seen.answer(&bugs_open, None, &closed)), ["#1"]);
        let everything = answerable("status_id=*").unwrap();
        assert_eq!(
            keys(seen.answer(&everything, None, &closed)),
            ["#1", "#2", "#3"]
        );
        let closed_ones = answerable("status_id=closed").unwrap();
        assert_eq!(keys(seen.answer(&closed_ones, None, &closed)), ["#2"]);
        let not_bugs = answerable("tracker_id=!1&status_id=*").unwrap();
        assert_eq!(keys(seen.answer(&not_bugs, None, &closed)), ["#3"]);

        // An incremental pass: only the changed issues were read.
        let pass = Seen::default();
        pass.changed(&[issue(7, 1, 1), issue(8, 1, 5)]);
        assert_eq!(pass.answer(&bugs_open, None, &closed), None);
        let among = ["#7".to_owned(), "#8".to_owned()];
        assert_eq!(keys(pass.answer(&bugs_open, Some(&among), &closed)), ["#7"]);
        let unread = ["#7".to_owned(), "#9".to_owned()];
        assert!(pass.covers(Some(&among)) && !pass.covers(Some(&unread)));
        assert_eq!(pass.answer(&bugs_open, Some(&unread), &closed), None);
    }
}
