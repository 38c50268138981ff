//! Declarations: the resource kinds, and reading and checking them from files.

mod id;
mod load;
mod resolved;
mod resources;
mod schedule;
mod source;
mod validate;

pub use id::{Kind, NameError, ObjectId};
pub use load::{
    API_VERSION, Catalog, Declared, Origin, SpecError, SpecErrors, local_issues_file, resource_id,
};
pub use resolved::{Connection, JiraAccess, ResolvedSync, SyncKind, Turn};
pub use resources::*;
pub use schedule::ScheduleError;
pub use validate::{supported, unsupported_direction};
