//! A structure's history: its journal, each change described with the
//! names of the rows it touched.

use serde::Serialize;

use crate::model::{Position, RowId, RowItem};
use crate::plan::StructureOp;
use crate::store::{Recorded, Store};

use super::EngineError;

/// One journal entry as people read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: u64,
    pub time: jiff::Timestamp,
    /// A person, or a synchronizer acting as the tracker identity.
    pub author: String,
    pub cause: String,
    /// The change in words: `move PLAT-9 from under PLAT-8 to under PLAT-4`.
    pub change: String,
    /// The change as journaled.
    pub operation: Recorded,
    /// The job that made it, for `trellis undo JOB`; none for manual edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
}

/// The journal of `structure`, oldest first.
pub fn history<S: Store>(store: &S, structure: &str) -> Result<Vec<HistoryEntry>, EngineError> {
    let journal = store.journal(structure)?;
    // Row ids are never reused, and every row came in through a journaled
    // add: the adds name every id the journal mentions.
    let names: std::collections::HashMap<RowId, &RowItem> = journal
        .iter()
        .filter_map(|entry| match &entry.change {
            Recorded::Structure(StructureOp::Add { row, .. }) => Some((row.id, &row.item)),
            _ => None,
        })
        .collect();
    let place = |at: &Position| match at.under {
        None => "at the top level".to_owned(),
        Some(id) => match names.get(&id) {
            Some(item) => format!("under {item}"),
            None => format!("under row {id}"),
        },
    };
    Ok(journal
        .iter()
        .map(|entry| HistoryEntry {
            version: entry.version,
            time: entry.time,
            author: entry.author.clone(),
            cause: entry.cause.clone(),
            change: match &entry.change {
                Recorded::Structure(StructureOp::Add { row, at }) => {
                    format!("add {} {}", row.item, place(at))
                }
                Recorded::Structure(StructureOp::Move { item, from, to, .. })
                    if from.under == to.under =>
                {
                    format!("reorder {item} {}", place(to))
                }
                Recorded::Structure(StructureOp::Move { item, from, to, .. }) => {
                    format!("move {item} from {} to {}", place(from), place(to))
                }
                Recorded::Structure(StructureOp::Remove { item, from, .. }) => {
                    format!(
                        "remove {item} from {}",
                        place(from).replace("at the ", "the ")
                    )
                }
                Recorded::Tracker(op) => format!("tracker: {op}"),
            },
            operation: entry.change.clone(),
            job: entry.job,
        })
        .collect())
}
