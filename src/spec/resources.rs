//! The four kinds users declare (group `trellis.dev`, version `v1alpha1`), as
//! Kubernetes custom resources or the same YAML in files.
//!
//! Schemas must be structural (the API server rejects others): every object
//! is typed, there is no `anyOf`/`oneOf`/`not`, `Option`s are skipped when
//! `None`, and the recursive `rows` list is marked preserve-unknown-fields
//! (a CRD schema cannot refer to itself); the loader checks rows strictly.

// kube's `printcolumn(name = .., type_ = "string", ..)` arguments repeat
// `type_ = "string"`, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Direction;

/// Status phases: each variant is the text `status.phase` shows, and the
/// CRD lists them.
macro_rules! phases {
    ($($name:ident { $($variant:ident),+ $(,)? })+) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// The text the status shows (also a condition's reason).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),+
                }
            }
        }

        impl $name {
            /// The schema of an optional phase: its texts, without the
            /// `null` schemars lists for an `Option` (`nullable` says it).
            fn optional_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "nullable": true,
                    "enum": [$(stringify!($variant)),+],
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

phases! {
    TrackerPhase { Handshake, Connected, Unauthorized, Unreachable }
    StructurePhase { Ready, ReadOnly }
    SynchronizerPhase { Handshake, Running, AwaitingApproval, Stopped, RestartRequired, Error }
    ResyncPhase { Pending, Waiting, Planning, AwaitingApproval, Running, Succeeded, Failed }
}

/// A reference to another resource in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalRef {
    pub name: String,
}

/// A kstatus condition (`Ready`, `Reconciling`, `Stalled`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

// ---------------------------------------------------------------- Tracker

/// A connected issue tracker.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "Tracker",
    doc = "A connected issue tracker (local, Redmine, Jira).",
    namespaced,
    status = "TrackerStatus",
    shortname = "trk",
    category = "trellis",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Identity", type_ = "string", json_path = ".status.identity"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackerSpec {
    #[serde(rename = "type")]
    pub type_: TrackerType,
    /// The server's base URL (Redmine, Jira), e.g. `https://redmine.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the API key is: never in the spec itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Settings of a `local` tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalTrackerSpec>,
    /// Settings of a `redmine` tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redmine: Option<RedmineTrackerSpec>,
    /// Settings of a `jira` tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira: Option<JiraTrackerSpec>,
    /// How fast Trellis may call the server (Redmine, Jira): at most this
    /// many requests per second and at once, counted together for every
    /// structure passing at the same time in one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Deliveries that make this tracker's synchronizers pass at once
    /// instead of at their next interval: Jira's webhooks, and `POST`s
    /// naming a synchronizer (a Redmine plugin, a CI job). Off unless
    /// set; the receiver listens where `trellis run --listen` or the
    /// controller's `--webhook-listen` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

/// How deliveries to a tracker's webhook prove they come from its sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    /// The shared secret: the secret of Jira's webhook (Jira signs each
    /// delivery with HMAC-SHA256 of it, `X-Hub-Signature`), or the token
    /// a sender that cannot sign gives (`Authorization: Bearer TOKEN`, or
    /// `?token=TOKEN` in the URL registered in Jira Data Center). Found
    /// as `credentials` are (`env`, `file`, or `secretRef` with its `key`
    /// named: a Secret's default key, `apiKey`, is the tracker's key).
    pub secret: Credentials,
}

/// Limits on the requests to one server, beside the pauses the server asks
/// for itself (`Retry-After`, Jira's `X-RateLimit-*` headers), which are
/// always honoured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests started per second, at most; a fraction spaces them out
    /// further (0.5: one every 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests waiting for an answer at once, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrent_requests: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TrackerType {
    /// Issues kept in a YAML file: the embedded default.
    Local,
    /// A Redmine server, through its REST API.
    Redmine,
    /// Jira Cloud (REST v3) or Jira Data Center (REST v2), with the Agile API.
    Jira,
}

impl TrackerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerType::Local => "local",
            TrackerType::Redmine => "redmine",
            TrackerType::Jira => "jira",
        }
    }
}

/// Where a tracker's secret comes from. The command line reads `env` or
/// `file`; the controller reads `secretRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// An environment variable that holds the secret (command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file that holds the secret (command line); relative paths start at
    /// the declaring file's folder. Used when `env` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A Secret in the tracker's namespace (controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    /// The key in the Secret's data; `apiKey` by default.
    #[serde(default = "default_secret_key")]
    pub key: String,
}

fn default_secret_key() -> String {
    "apiKey".into()
}

impl SecretKeyRef {
    /// The Secret `name`'s default key, `apiKey`.
    pub fn named(name: impl Into<String>) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: default_secret_key(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedmineTrackerSpec {
    /// The project (identifier or numeric id) whose issues make the
    /// tracker's scope; every issue the API key can see when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Include the project's subprojects (Redmine's own default).
    #[serde(default = "enabled_by_default")]
    pub subprojects: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JiraTrackerSpec {
    /// `cloud` (REST v3, the account's email and an API token) or
    /// `datacenter` (REST v2, a personal access token).
    pub deployment: JiraDeployment,
    /// The JQL that makes the tracker's scope, e.g. `project = PLAT`; every
    /// query of its synchronizers is ANDed with it. Required on Cloud,
    /// which refuses unbounded searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jql: Option<String>,
    /// Jira Cloud: the email of the Atlassian account the API token
    /// belongs to (not a secret; the token is found through `credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JiraDeployment {
    Cloud,
    Datacenter,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalTrackerSpec {
    /// The issues file; relative paths start at the declaring file's folder.
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackerStatus {
    /// `Handshake`, `Connected`, `Unauthorized` or `Unreachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "TrackerPhase::optional_schema")]
    pub phase: Option<TrackerPhase>,
    /// Who Trellis acts as in the tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The last webhook delivery accepted for this tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<EventStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A webhook delivery as a Tracker's status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStatus {
    /// When it arrived (RFC 3339).
    pub received: String,
    /// What the sender said happened (`jira:issue_updated`, `trigger`).
    pub event: String,
    /// The issues it named, at most ten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<String>,
    /// The synchronizers it made due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synchronizers: Vec<String>,
}

// -------------------------------------------------------------- Structure

/// A named, ordered forest of rows kept in agreement with one tracker.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "Structure",
    doc = "A named, ordered forest of rows kept in agreement with one tracker.",
    namespaced,
    status = "StructureStatus",
    shortname = "struct",
    category = "trellis",
    printcolumn(
        name = "Tracker",
        type_ = "string",
        json_path = ".spec.trackerRef.name"
    ),
    printcolumn(name = "Rows", type_ = "integer", json_path = ".status.rows"),
    printcolumn(name = "Version", type_ = "integer", json_path = ".status.version"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StructureSpec {
    /// The tracker whose issues the structure holds; a portfolio has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_ref: Option<LocalRef>,
    /// Makes this a portfolio: no scope, rows or synchronizers of its own; it
    /// shows other structures' rows, each under a folder named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Static rows (folders or issues) that always exist, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowSpec>,
    /// What deleting the Structure object does to its content in the
    /// Trellis store: `Keep` (the default; re-creating it finds the rows
    /// and their history again) or `Delete`.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_keep")]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Keep,
    Delete,
}

impl DeletionPolicy {
    fn is_keep(&self) -> bool {
        *self == DeletionPolicy::Keep
    }
}

/// The structures a portfolio aggregates, in the order it shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortfolioSpec {
    pub structure_refs: Vec<LocalRef>,
}

/// A declared row: exactly one of `folder` or `issue`, with rows under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "nested_rows_schema")]
    pub rows: Vec<RowSpec>,
}

fn nested_rows_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StructureStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `Ready` or `ReadOnly` (while a resync runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "StructurePhase::optional_schema")]
    pub phase: Option<StructurePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

// ----------------------------------------------------------- Synchronizer

/// One rule that keeps one aspect of a structure and its tracker in agreement.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "Synchronizer",
    doc = "One rule that keeps one aspect of a structure and its tracker in agreement.",
    namespaced,
    status = "SynchronizerStatus",
    shortname = "sync",
    category = "trellis",
    printcolumn(
        name = "Structure",
        type_ = "string",
        json_path = ".spec.structureRef.name"
    ),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSync"),
    printcolumn(name = "Errors", type_ = "integer", json_path = ".status.errorCount"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SynchronizerSpec {
    pub structure_ref: LocalRef,
    #[serde(rename = "type")]
    pub type_: SynchronizerType,
    /// A stopped synchronizer keeps its structure as it is; resyncs still run.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The directions it syncs in when it runs by itself: `apply` runs the
    /// first (defaults to the first the type supports: `into`, or `from` for
    /// statusRollup). A resync may run any direction the type supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<SyncDirection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<LinksSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agile: Option<AgileSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_rollup: Option<StatusRollupSpec>,
    /// Limits on what one plan may remove, and the cycle guard; see [`SafetySpec`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetySpec>,
    /// Who wins when an issue changed in the tracker and its row changed in
    /// the structure since the last pass: `tracker` (the default: the
    /// tracker's value is kept), `structure` (the structure's is written to
    /// the tracker), `newest` (whichever side changed last: the issue's
    /// `updated` time against the time of the structure's journal entry) or
    /// `manual` (neither side is changed; the issue is reported as an error
    /// of this synchronizer until someone settles it with `trellis
    /// troubleshoot`).
    #[serde(default, skip_serializing_if = "ConflictPolicy::is_tracker")]
    pub conflict_policy: ConflictPolicy,
    /// When incremental passes run: every `interval`, a full read after
    /// `fullResyncAfter`, optionally only inside a daily `window`. Every
    /// 30 s at any time of day, a full read every 24 h, when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// The hash of a held pass plan (`status.heldPlan.hash`, or `trellis
    /// status`) that a reviewer approved: the next pass carries it out if it
    /// is still the plan. See `safety.destructivePasses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<String>,
}

/// How a change made on both sides since the last pass is settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConflictPolicy {
    /// The tracker's value wins: the structure follows the tracker.
    #[default]
    Tracker,
    /// The structure's value wins: it is written to the tracker.
    Structure,
    /// Whichever side changed last wins: the issue's `updated` time against
    /// the time of the structure's journal entry for the row.
    Newest,
    /// Neither side is changed: the issue is reported as a per-issue error
    /// until a person resolves it with `trellis troubleshoot`.
    Manual,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Tracker => "tracker",
            ConflictPolicy::Structure => "structure",
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::Manual => "manual",
        }
    }

    fn is_tracker(&self) -> bool {
        *self == ConflictPolicy::Tracker
    }
}

/// When a synchronizer's incremental passes run. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// How often a pass runs, e.g. `30s`, `5m`, `1h 30m`; `30s` when left
    /// out, at least `5s`. A pass reads only what changed since the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// A pass reads everything (a full resync into the structure) when the
    /// last full read is older than this, e.g. `12h`; `24h` when left out,
    /// at least `interval`. Days are written as hours (`168h` for a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_resync_after: Option<String>,
    /// A daily window, e.g. `{start: "20:00", end: "03:00", timeZone:
    /// Europe/Berlin}`: passes run only inside it; at any time when left
    /// out. Each synchronizer's first pass of a window comes a little after
    /// `start` (within a quarter of the window, at most an hour), at a
    /// moment fixed for that synchronizer, so that synchronizers sharing a
    /// window do not all call the tracker at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
}

/// A daily time window: from `start` until `end`, on the next day when
/// `end` is earlier than `start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    /// When the window opens, `HH:MM` (24-hour clock), e.g. `"20:00"`.
    pub start: String,
    /// When it closes, `HH:MM`; earlier than `start` for a window past
    /// midnight (`"03:00"`). Must differ from `start`.
    pub end: String,
    /// The IANA time zone `start` and `end` are read in, e.g.
    /// `Europe/Berlin`; `UTC` when left out. On a day a time does not
    /// exist (clocks jump forward), the window opens or closes that much
    /// later; on a day it exists twice, at its first occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// How many rows of its structure a synchronizer may remove in one plan.
/// A plan that removes more is refused before anything is written, so a
/// broken query cannot empty a structure. Raising a limit is the override.
/// `maxRounds` bounds how long synchronizers may undo each other.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafetySpec {
    /// At most this many rows; no count limit when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removals: Option<u32>,
    /// At most this share (0 to 1) of the rows the structure had before the
    /// plan; 0.5 when left out, 1 to allow removing every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removal_ratio: Option<f64>,
    /// The cycle guard: synchronizers of one structure that keep undoing
    /// each other's changes are stopped after this many rounds; 10 when
    /// left out, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_rounds: Option<u32>,
    /// What an incremental pass does with a plan that removes rows or
    /// clears parents and links: `hold` (the default) carries out nothing
    /// and waits until the plan's hash is approved (`spec.approvedPlan`, or
    /// `trellis sync --once --approve`), as `apply` would not carry it out
    /// without review; `apply` carries it out.
    #[serde(default, skip_serializing_if = "DestructivePasses::is_hold")]
    pub destructive_passes: DestructivePasses,
}

/// See [`SafetySpec::destructive_passes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DestructivePasses {
    /// Nothing is carried out until the plan is approved.
    #[default]
    Hold,
    /// Destructive changes are carried out like any other.
    Apply,
}

impl DestructivePasses {
    fn is_hold(&self) -> bool {
        *self == DestructivePasses::Hold
    }
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SynchronizerType {
    /// Issues matching a query are added; optionally removed when they stop matching.
    Filter,
    /// Child issues under their parent issue.
    Subtasks,
    /// Issues under the issues one link type links them to.
    Links,
    /// A query's issues as a backlog: stories under their epic, sub-tasks
    /// under their story, siblings in rank order.
    Agile,
    /// A parent's status follows its children's (from the structure only).
    StatusRollup,
}

impl SynchronizerType {
    pub fn as_str(self) -> &'static str {
        match self {
            SynchronizerType::Filter => "filter",
            SynchronizerType::Subtasks => "subtasks",
            SynchronizerType::Links => "links",
            SynchronizerType::Agile => "agile",
            SynchronizerType::StatusRollup => "statusRollup",
        }
    }
}

/// `into` the structure (import) or `from` the structure (export).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SyncDirection {
    Into,
    From,
}

impl From<SyncDirection> for Direction {
    fn from(d: SyncDirection) -> Direction {
        match d {
            SyncDirection::Into => Direction::Into,
            SyncDirection::From => Direction::From,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// A query in the tracker's own language.
    pub query: String,
    /// Where added issues go; the top level when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<PlacementSpec>,
    /// Remove rows this synchronizer added once their issue stops matching.
    #[serde(default)]
    pub remove: bool,
}

/// A hierarchy from one link type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinksSpec {
    /// The link type, as the tracker names it (Redmine: `blocks`,
    /// `precedes`, `duplicates` or `copied_to`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Which end of a link is the parent: `source`, the issue that holds
    /// it (`A blocks B`: A), or `target` (B).
    pub parent_end: LinkEndSpec,
    /// Only issues this query matches are parents; links to others are not
    /// this synchronizer's (never followed, never deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_filter: Option<String>,
    /// Likewise for children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_filter: Option<String>,
    /// `structure` (the default): only issues already in the structure;
    /// `expand`: also add children found through links; `all`: every linked
    /// issue, and an export deletes every link of the type that the
    /// structure does not show.
    #[serde(default)]
    pub scope: LinkScopeSpec,
}

/// A backlog: epics, stories, sub-tasks and rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgileSpec {
    /// The issues, as a query in the tracker's own language.
    pub query: String,
    /// Sub-tasks go under their story (the default); otherwise they are
    /// placed as issues without an epic.
    #[serde(default = "enabled_by_default")]
    pub subtasks: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LinkEndSpec {
    Source,
    Target,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LinkScopeSpec {
    #[default]
    Structure,
    Expand,
    All,
}

/// How a parent's status follows its children's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusRollupSpec {
    /// The rolled-up statuses, in order: a parent takes the earliest status
    /// among its children. A parent or child in a status not listed here
    /// leaves the parent unchanged.
    pub statuses: Vec<String>,
    /// Only parents of these issue types change; every type when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issue_types: Vec<String>,
}

/// Exactly one of `folder` (a declared folder) or `issue` (an issue row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
}

/// A failed operation on one issue (Backbone's per-issue errors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueError {
    pub issue: String,
    pub operation: String,
    pub message: String,
    /// RFC 3339 time the error was first seen.
    pub since: String,
    pub attempts: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizerStatus {
    /// `Running`, `AwaitingApproval`, `Stopped`, `RestartRequired`, `Handshake` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "SynchronizerPhase::optional_schema")]
    pub phase: Option<SynchronizerPhase>,
    /// RFC 3339 time of the last successful sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// RFC 3339 time of the last run, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<IssueError>,
    /// The destructive plan its passes wait on (`spec.safety.destructivePasses`):
    /// set `spec.approvedPlan` to its hash to carry it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_plan: Option<PlanStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

// ----------------------------------------------------------------- Resync

/// The annotation naming who asked for a Resync. deploy/'s admission policy
/// refuses a Resync whose annotation is not the requester's own username;
/// the controller journals that person as the author of its changes.
pub const REQUESTED_BY_ANNOTATION: &str = "trellis.dev/requested-by";

/// The label naming a Resync's structure: deploy/'s admission policy checks
/// the requester's `control` on it (a policy cannot look the synchronizer
/// up), and the controller refuses to run a Resync whose label is not its
/// synchronizer's structure.
pub const STRUCTURE_LABEL: &str = "trellis.dev/structure";

/// A one-time full sync of one synchronizer in one direction.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "Resync",
    doc = "A one-time full sync of one synchronizer in one direction.",
    namespaced,
    status = "ResyncStatus",
    shortname = "rsy",
    category = "trellis",
    printcolumn(
        name = "Synchronizer",
        type_ = "string",
        json_path = ".spec.synchronizerRef.name"
    ),
    printcolumn(name = "Direction", type_ = "string", json_path = ".spec.direction"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Plan", type_ = "string", json_path = ".status.plan.hash"),
    printcolumn(
        name = "Requested-By",
        type_ = "string",
        json_path = ".status.requestedBy",
        priority = 1
    ),
    printcolumn(
        name = "Summary",
        type_ = "string",
        json_path = ".status.plan.summary",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResyncSpec {
    pub synchronizer_ref: LocalRef,
    pub direction: SyncDirection,
    /// The plan hash a reviewer approved; needed when the plan is destructive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_plan: Option<String>,
    /// Enable the synchronizer once the resync succeeds ("Resync and Enable").
    #[serde(default)]
    pub enable_after: bool,
    /// Run as the person who asked: the tracker is read and written with
    /// the key in this Secret (in the Resync's namespace, labelled
    /// `trellis.dev/credentials=true`), so an import holds only the issues
    /// that person can see. The admission policy lets it through only if
    /// the requester may `get` the Secret. Read by the controller; the
    /// command line acts as its user already, with the key it is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// Whose tracker credentials a Resync runs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunAs {
    /// The requester's API key (Redmine), API token (Jira Cloud, with the
    /// account's address under the key `email`) or personal access token
    /// (Jira Data Center).
    pub secret_ref: SecretKeyRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    pub hash: String,
    pub summary: String,
    pub destructive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_excerpt: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResyncStatus {
    /// `Pending`, `Waiting`, `Planning`, `AwaitingApproval`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "ResyncPhase::optional_schema")]
    pub phase: Option<ResyncPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,
    /// Operations done so far, of `total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Who asked for the resync (`trellis.dev/requested-by`, which the
    /// admission policy checks against the requester): the author of its
    /// changes in the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The four CustomResourceDefinitions as one multi-document YAML stream, as
/// committed in `crds/trellis.dev.yaml`.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let crds = [
        Tracker::crd(),
        Structure::crd(),
        Synchronizer::crd(),
        Resync::crd(),
    ];
    let docs: Vec<String> = crds
        .iter()
        .map(|crd| serde_saphyr::to_string(crd).expect("CRDs serialize"))
        .collect();
    docs.join("---\n")
}
