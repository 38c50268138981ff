//! Who is asking, and what they may do. `trellis ui` acts as the person
//! running it, who may do anything the store lets them. The controller's
//! UI (`--ui-listen`) serves a cluster's people: each request carries their
//! own Kubernetes bearer token (an `Authorization` header, or the cookie
//! the sign-in page sets), the API server says who it is (TokenReview) and
//! whether they may view, edit or control a structure (SubjectAccessReview
//! of the permission levels' verbs), as the Kubernetes Dashboard does.
//! Without a token the UI shows nothing but the sign-in page.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::spec::Catalog;

/// A person, as their token names them.
#[derive(Clone, Debug, Default)]
pub struct Person {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    /// Their own token: what the UI acts with in the cluster (an approval
    /// is their patch, checked by RBAC and the admission policy as theirs).
    pub token: Option<String>,
}

/// The permission levels on a structure (README, Permissions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `get`: see it, its plans, jobs and history.
    View,
    /// `edit`: move rows by hand.
    Edit,
    /// `control`: approve plans, release held issues, restart.
    Control,
}

impl Verb {
    /// The verb on `structures` the cluster's authorizer is asked about.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::View => "get",
            Verb::Edit => "edit",
            Verb::Control => "control",
        }
    }

    /// The permission level that grants it (deploy/roles-for-people.yaml:
    /// trellis-view, trellis-edit, trellis-control).
    pub fn level(self) -> &'static str {
        match self {
            Verb::View => "view",
            Verb::Edit => "edit",
            Verb::Control => "control",
        }
    }
}

/// The objects a person changes from the UI in a cluster: a Resync or a
/// Synchronizer (its `approvedPlan`; a Synchronizer's `enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Resync,
    Synchronizer,
}

/// What the controller gives the UI: its declarations as watched, and the
/// cluster's answers about people.
pub trait Cluster: Send + Sync + 'static {
    fn catalog(&self) -> Arc<Catalog>;
    /// The owner of `token` (TokenReview), or why it is not accepted.
    fn person<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Person, String>>;
    /// Whether `person` may `verb` structure `id` (SubjectAccessReview).
    fn may<'a>(
        &'a self,
        person: &'a Person,
        verb: Verb,
        structure: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;
    /// Merges `spec` into the spec of the Resync or Synchronizer `id`, as
    /// `person` (with their token): RBAC and the admission policy judge it.
    fn change_spec<'a>(
        &'a self,
        person: &'a Person,
        object: Object,
        id: &'a str,
        spec: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Whose UI this is.
pub(super) enum Mode {
    /// `trellis ui`: declarations read at each request (a changed file
    /// shows at once; none: the declarations last applied), one person.
    Local {
        files: Vec<std::path::PathBuf>,
        author: String,
    },
    /// The controller's: its people sign in.
    Cluster(Arc<dyn Cluster>),
}
