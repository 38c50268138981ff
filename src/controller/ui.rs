//! The controller's web UI (`--ui-listen`, off unless given): the pages of
//! `trellis ui` over the controller's store and watched declarations, for
//! the cluster's people. Who they are is the API server's answer to a
//! TokenReview of their own bearer token; what they may do, its answer to a
//! SubjectAccessReview of the permission verbs on `structures` (the
//! Kubernetes Dashboard's way). An approval is made with their token, so
//! RBAC and the admission policy judge it as theirs. Answers are kept
//! for [`ANSWERS_TTL`]: a page asks once per structure, and a revoked
//! binding takes effect within that time. Approvals and start/stop are
//! patches made with the person's own token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sha2::{Digest, Sha256};

use super::context::Context;
use crate::spec::{Catalog, Resync, Synchronizer};
use crate::web::{Cluster, Object, Person, Verb};

const ANSWERS_TTL: Duration = Duration::from_secs(10);

/// The cluster's answer for (person, verb, structure), and when it came.
type Answers = HashMap<(String, Verb, String), (Instant, bool)>;

struct ControllerUi {
    ctx: Arc<Context>,
    /// How the controller reaches the API server, for requests made with a
    /// person's token instead of its own.
    config: kube::Config,
    /// Each token's owner (by the token's SHA-256), and when it was asked.
    people: Mutex<HashMap<[u8; 32], (Instant, Person)>>,
    answers: Mutex<Answers>,
}

/// Serves the UI on `address` until `shutdown`.
pub async fn serve(
    address: SocketAddr,
    state: std::path::PathBuf,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = crate::web::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "serving the web UI");
    let config = kube::Config::infer()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the cluster's address for the UI: {e}"))?;
    let cluster = ControllerUi {
        ctx,
        config,
        people: Mutex::default(),
        answers: Mutex::default(),
    };
    let ui = crate::web::Ui::in_cluster(state, Arc::new(cluster))?;
    crate::web::serve(listener, Arc::new(ui), shutdown).await?;
    Ok(())
}

fn fresh<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Mutex<HashMap<K, (Instant, V)>>,
    key: &K,
) -> Option<V> {
    let cache = cache.lock().expect("not poisoned");
    cache
        .get(key)
        .filter(|(at, _)| at.elapsed() < ANSWERS_TTL)
        .map(|(_, v)| v.clone())
}

impl ControllerUi {
    async fn review(&self, token: &str) -> Result<Person, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.ctx.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("the cluster's TokenReview failed: {e}"))?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(status
                .error
                .unwrap_or_else(|| "the cluster does not know this token".to_owned()));
        }
        let user = status.user.unwrap_or_default();
        Ok(Person {
            name: user.username.unwrap_or_default(),
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default().into_iter().collect(),
            token: Some(token.to_owned()),
        })
    }

    async fn access_review(
        &self,
        person: &Person,
        verb: Verb,
        structure: &str,
    ) -> Result<bool, String> {
        let (namespace, name) = structure.split_once('/').unwrap_or(("default", structure));
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(person.name.clone()),
                uid: person.uid.clone(),
                groups: Some(person.groups.clone()),
                extra: Some(person.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("trellis.dev".to_owned()),
                    resource: Some("structures".to_owned()),
                    verb: Some(verb.as_str().to_owned()),
                    namespace: Some(namespace.to_owned()),
                    name: Some(name.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.ctx.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("the cluster's SubjectAccessReview failed: {e}"))?;
        Ok(reviewed.status.is_some_and(|s| s.allowed))
    }

    /// A client that acts as `person`: their token, nothing of the
    /// controller's own credentials.
    fn client_of(&self, person: &Person) -> Result<Client, String> {
        let token = person.token.as_deref().ok_or("no token to act with")?;
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo::default();
        let bearer = hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a header value".to_owned())?;
        config.headers.push((hyper::header::AUTHORIZATION, bearer));
        Client::try_from(config).map_err(|e| format!("cannot make a client for you: {e}"))
    }
}

impl Cluster for ControllerUi {
    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(self.ctx.catalog().0)
    }

    fn person<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Person, String>> {
        async move {
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(person) = fresh(&self.people, &key) {
                return Ok(person);
            }
            let person = self.review(token).await?;
            self.people
                .lock()
                .expect("not poisoned")
                .insert(key, (Instant::now(), person.clone()));
            Ok(person)
        }
        .boxed()
    }

    fn may<'a>(
        &'a self,
        person: &'a Person,
        verb: Verb,
        structure: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        async move {
            let key = (person.name.clone(), verb, structure.to_owned());
            if let Some(allowed) = fresh(&self.answers, &key) {
                return Ok(allowed);
            }
            let allowed = self.access_review(person, verb, structure).await?;
            self.answers
                .lock()
                .expect("not poisoned")
                .insert(key, (Instant::now(), allowed));
            Ok(allowed)
        }
        .boxed()
    }

    fn change_spec<'a>(
        &'a self,
        person: &'a Person,
        object: Object,
        id: &'a str,
        spec: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let client = self.client_of(person)?;
            let (namespace, name) = id.split_once('/').unwrap_or(("default", id));
            let patch = Patch::Merge(serde_json::json!({ "spec": spec }));
            let params = PatchParams::default();
            let patched = match object {
                Object::Resync => Api::<Resync>::namespaced(client, namespace)
                    .patch(name, &params, &patch)
                    .await
                    .map(drop),
                Object::Synchronizer => Api::<Synchronizer>::namespaced(client, namespace)
                    .patch(name, &params, &patch)
                    .await
                    .map(drop),
            };
            patched.map_err(|e| match e {
                kube::Error::Api(status) => {
                    format!("the cluster refused your change: {}", status.message)
                }
                other => format!("the change could not be made: {other}"),
            })
        }
        .boxed()
    }
}
