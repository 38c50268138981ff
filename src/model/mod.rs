//! The pure model: issues, structures (forests of rows), snapshots and the
//! operations that change them. Nothing here does I/O.

mod forest;
mod issue;
pub mod rank;
mod row_map;
mod snapshot;
mod workflow;

pub use forest::{Forest, ForestError, Position, Row, RowId, RowItem, after_by_rank};
pub use issue::{Issue, Link, StatusCategory, split_key};
pub use rank::RankAnchor;
pub use row_map::RowMap;
pub use snapshot::Snapshot;
pub(crate) use snapshot::hex;
pub use workflow::Workflow;

use serde::{Deserialize, Serialize};

/// Which side a sync changes: `into` the structure (the tracker has the final
/// say) or `from` the structure (the tracker's issues change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Into,
    From,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Into => "into",
            Direction::From => "from",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
