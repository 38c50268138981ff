//! Tracker clients from declarations, with their credentials.
//!
//! The command line reads a key from `spec.credentials.env`, else from
//! `spec.credentials.file`; the controller from the Secret named by
//! `spec.credentials.secretRef`, read before the run. The key is never in
//! the spec, and errors say where Trellis looked, never what it found.

use std::collections::HashMap;

use crate::spec::{
    Catalog, Connection, Declared, JiraAccess, JiraDeployment, SpecErrors,
    Tracker as TrackerResource, TrackerType,
};
use crate::tracker::http::{ApiKey, Retry};
use crate::tracker::jira::{self, Deployment, JiraTracker};
use crate::tracker::redmine::Settings;
use crate::tracker::{AnyTracker, LocalTracker, RedmineTracker};

use super::EngineError;

/// Where tracker keys come from.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// `spec.credentials.env` or `spec.credentials.file`.
    #[default]
    CommandLine,
    /// `spec.credentials.secretRef`: by `namespace/name/key`, the value
    /// read from the cluster by the controller, or why it cannot be used.
    Secrets(HashMap<String, Result<ApiKey, String>>),
    /// A Resync's `spec.runAs`: the requester's own key, used instead of
    /// the tracker's.
    Person(PersonalKey),
}

/// A person's key for the tracker a run uses, read from their Secret.
#[derive(Clone, Debug)]
pub struct PersonalKey {
    pub key: ApiKey,
    /// Jira Cloud's account address, which goes with an API token.
    pub email: Option<String>,
    /// Where it came from (`key apiKey of Secret ns/name`), for errors.
    pub source: String,
}

impl Credentials {
    /// The `namespace/name/key` a tracker's `secretRef` names, if any.
    pub fn secret_of(tracker: &Declared<TrackerResource>) -> Option<(String, String, String)> {
        let reference = tracker
            .resource
            .spec
            .credentials
            .as_ref()?
            .secret_ref
            .as_ref()?;
        let namespace = tracker
            .resource
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        Some((namespace, reference.name.clone(), reference.key.clone()))
    }
}

/// Clients for the trackers a run uses, each made on first use and kept
/// for the run (one handshake per tracker).
pub(super) struct Trackers {
    credentials: Credentials,
    clients: HashMap<String, AnyTracker>,
}

impl Trackers {
    pub fn new(credentials: Credentials) -> Trackers {
        Trackers {
            credentials,
            clients: HashMap::new(),
        }
    }

    pub fn get(&mut self, catalog: &Catalog, id: &str) -> Result<&AnyTracker, EngineError> {
        if !self.clients.contains_key(id) {
            let tracker = catalog
                .tracker(id)
                .ok_or_else(|| EngineError::NotFound(format!("tracker {id} is not declared")))?;
            let connection = catalog.connection(id).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "tracker {id} is declared wrongly; `trellis validate` says how"
                ))
            })?;
            self.clients.insert(
                id.to_owned(),
                client(tracker, connection, &self.credentials)?,
            );
        }
        Ok(&self.clients[id])
    }
}

fn client(
    tracker: &Declared<TrackerResource>,
    connection: &Connection,
    credentials: &Credentials,
) -> Result<AnyTracker, EngineError> {
    let tracker_error = |source| EngineError::Tracker {
        tracker: tracker.id(),
        source,
    };
    // The key only for a server tracker: a local one has none to look for.
    let key = || match credentials {
        Credentials::CommandLine => api_key(tracker),
        Credentials::Secrets(secrets) => secret_key(tracker, secrets),
        Credentials::Person(person) => Ok((person.key.clone(), person.source.clone())),
    };
    match connection {
        Connection::Local { issues } => Ok(AnyTracker::Local(LocalTracker::new(issues.clone()))),
        Connection::Redmine {
            url,
            project,
            subprojects,
        } => {
            let (key, key_source) = key()?;
            RedmineTracker::new(Settings {
                url: url.clone(),
                key,
                key_source,
                project: project.clone(),
                subprojects: *subprojects,
                retry: Retry::default(),
                rate_limit: tracker.resource.spec.rate_limit,
            })
            .map(AnyTracker::Redmine)
            .map_err(tracker_error)
        }
        Connection::Jira { url, access, jql } => {
            let (token, token_source) = key()?;
            JiraTracker::new(jira::Settings {
                url: url.clone(),
                deployment: match access {
                    JiraAccess::Cloud { email } => Deployment::Cloud {
                        email: cloud_account(tracker, email, credentials)?,
                    },
                    JiraAccess::DataCenter => Deployment::DataCenter,
                },
                token,
                token_source,
                scope: jql.clone(),
                retry: Retry::default(),
                rate_limit: tracker.resource.spec.rate_limit,
            })
            .map(AnyTracker::Jira)
            .map_err(tracker_error)
        }
    }
}

/// The Jira Cloud account an API token belongs to: a person's own
/// (`spec.runAs`) goes with their address, not the tracker's.
fn cloud_account(
    tracker: &Declared<TrackerResource>,
    declared: &str,
    credentials: &Credentials,
) -> Result<String, EngineError> {
    match credentials {
        Credentials::Person(person) => person.email.clone().ok_or_else(|| {
            refuse(
                tracker,
                "spec.credentials",
                format!(
                    "{} (a Resync's spec.runAs) holds a Jira Cloud API token without its account: add the address under the key `email`",
                    person.source
                ),
            )
        }),
        _ => Ok(declared.to_owned()),
    }
}

/// A credentials problem, at the tracker's declaration.
fn refuse(tracker: &Declared<TrackerResource>, field: &str, message: String) -> EngineError {
    let error = tracker
        .origin
        .error(field, format!("tracker {}: {message}", tracker.id()));
    EngineError::Credentials {
        tracker: tracker.id(),
        problem: SpecErrors(vec![error]),
    }
}

/// The key from the tracker's Secret.
fn secret_key(
    tracker: &Declared<TrackerResource>,
    secrets: &HashMap<String, Result<ApiKey, String>>,
) -> Result<(ApiKey, String), EngineError> {
    let refuse = |field: &str, message: String| refuse(tracker, field, message);
    let Some((namespace, name, key)) = Credentials::secret_of(tracker) else {
        return Err(refuse(
            "spec.credentials",
            "in a cluster the API key comes from a Secret: set spec.credentials.secretRef.name (and .key, `apiKey` by default)".into(),
        ));
    };
    let source = format!("key {key} of Secret {namespace}/{name}");
    match secrets.get(&format!("{namespace}/{name}/{key}")) {
        Some(Ok(value)) => Ok((value.clone(), source)),
        Some(Err(why)) => Err(refuse(
            "spec.credentials.secretRef",
            format!("{source}: {why}"),
        )),
        None => Err(refuse(
            "spec.credentials.secretRef",
            format!(
                "{source} was not found; create it, e.g. `kubectl create secret generic {name} -n {namespace} --from-literal={key}=...`"
            ),
        )),
    }
}

/// The key and a description of where it came from.
fn api_key(tracker: &Declared<TrackerResource>) -> Result<(ApiKey, String), EngineError> {
    let credentials = tracker
        .resource
        .spec
        .credentials
        .clone()
        .unwrap_or_default();
    let secret = Secret {
        field: "spec.credentials",
        what: "the API key",
        hint: where_keys_come_from(tracker),
    };
    command_line_secret(tracker, &credentials, &secret)
}

/// A tracker's webhook secret, as the command line finds it
/// (`spec.webhook.secret.env`, else `.file`).
pub fn webhook_secret(tracker: &Declared<TrackerResource>) -> Result<ApiKey, EngineError> {
    let Some(webhook) = &tracker.resource.spec.webhook else {
        return Err(refuse(
            tracker,
            "spec.webhook",
            "no webhook is declared; set spec.webhook.secret to receive deliveries".into(),
        ));
    };
    let secret = Secret {
        field: "spec.webhook.secret",
        what: "the webhook secret",
        hint: "the secret registered with the webhook",
    };
    command_line_secret(tracker, &webhook.secret, &secret).map(|(key, _)| key)
}

/// Which secret of a tracker is read, for the errors.
struct Secret {
    field: &'static str,
    what: &'static str,
    /// Where a person finds it.
    hint: &'static str,
}

/// A secret from an environment variable, else a file, and where it came
/// from; errors name the field and say what to do, never the value.
fn command_line_secret(
    tracker: &Declared<TrackerResource>,
    credentials: &crate::spec::Credentials,
    secret: &Secret,
) -> Result<(ApiKey, String), EngineError> {
    let Secret { field, what, hint } = secret;
    let refuse = |field: &str, message: String| refuse(tracker, field, message);
    if let Some(name) = &credentials.env {
        match std::env::var(name) {
            Ok(key) if !key.trim().is_empty() => {
                return Ok((
                    ApiKey::new(key.trim()),
                    format!("environment variable {name}"),
                ));
            }
            _ if credentials.file.is_some() => {}
            _ => {
                return Err(refuse(
                    &format!("{field}.env"),
                    format!(
                        "environment variable {name} is not set or empty; export it with {what} ({hint})"
                    ),
                ));
            }
        }
    }
    if let Some(file) = &credentials.file {
        let path = tracker.origin.base_dir().join(file);
        return match std::fs::read_to_string(&path) {
            Ok(key) if !key.trim().is_empty() => {
                Ok((ApiKey::new(key.trim()), format!("file {}", path.display())))
            }
            Ok(_) => Err(refuse(
                &format!("{field}.file"),
                format!("{} is empty; write {what} into it", path.display()),
            )),
            Err(e) => Err(refuse(
                &format!("{field}.file"),
                format!(
                    "cannot read {what} from {}: {e}{}",
                    path.display(),
                    credentials
                        .env
                        .as_ref()
                        .map(|n| format!(" (environment variable {n} is not set either)"))
                        .unwrap_or_default()
                ),
            )),
        };
    }
    Err(refuse(
        field,
        format!(
            "the command line reads {what} from {field}.env or {field}.file, and neither is given (secretRef is read by the controller)"
        ),
    ))
}

/// Where a person finds the key a tracker type takes.
fn where_keys_come_from(tracker: &Declared<TrackerResource>) -> &'static str {
    let jira = tracker.resource.spec.jira.as_ref().map(|j| j.deployment);
    match (tracker.resource.spec.type_, jira) {
        (TrackerType::Jira, Some(JiraDeployment::Datacenter)) => {
            "Jira Data Center: Profile → Personal Access Tokens"
        }
        (TrackerType::Jira, _) => {
            "Jira Cloud: an API token from id.atlassian.com → Security → API tokens"
        }
        _ => "Redmine: My account → API access key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jira_cloud() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trellis.yaml");
        std::fs::write(
            &file,
            "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {name: jira}\nspec: {type: jira, url: 'https://example.atlassian.net', credentials: {secretRef: {name: jira-token}}, jira: {deployment: cloud, email: service@example.com, jql: 'project = PLAT'}}\n",
        )
        .unwrap();
        let catalog = Catalog::load(&[file]).unwrap();
        (dir, catalog)
    }

    fn person(email: Option<&str>) -> Credentials {
        Credentials::Person(PersonalKey {
            key: ApiKey::new("token-of-sam"),
            email: email.map(str::to_owned),
            source: "key apiKey of Secret default/sam-jira".into(),
        })
    }

    #[test]
    fn a_persons_jira_cloud_token_goes_with_their_own_address() {
        let (_dir, catalog) = jira_cloud();
        let tracker = catalog.tracker("default/jira").unwrap();
        let declared = "service@example.com";
        assert_eq!(
            cloud_account(tracker, declared, &Credentials::default()).unwrap(),
            declared
        );
        assert_eq!(
            cloud_account(tracker, declared, &person(Some("sam@example.com"))).unwrap(),
            "sam@example.com"
        );
        let refused = cloud_account(tracker, declared, &person(None))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("Secret default/sam-jira")
                && refused.contains("spec.runAs")
                && refused.contains("`email`")
                && !refused.contains("token-of-sam"),
            "{refused}"
        );
    }
}
