//! `trellis resync --cluster`: the cluster counterpart of `trellis resync
//! -f`. It asks the controller by creating a Resync, as the person running
//! it: the API server's admission policy (deploy/permissions.yaml) checks
//! their `control` on the structure and that the Resync names them, so this
//! fills in what it checks and then waits for the controller's answer.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::model::Direction;
use crate::spec::{
    Condition, LocalRef, REQUESTED_BY_ANNOTATION, Resync, ResyncPhase, ResyncSpec, ResyncStatus,
    RunAs, STRUCTURE_LABEL, SecretKeyRef, SyncDirection, Synchronizer,
};

/// What `trellis resync --cluster` was asked.
pub struct ClusterResync {
    pub synchronizer: String,
    pub direction: Direction,
    pub namespace: Option<String>,
    pub approve: Option<String>,
    /// A Secret of the person's own tracker key (`spec.runAs`).
    pub run_as: Option<String>,
    pub timeout: Duration,
}

const POLL: Duration = Duration::from_secs(1);

pub async fn resync(asked: ClusterResync) -> anyhow::Result<std::process::ExitCode> {
    let client = Client::try_default()
        .await
        .context("no cluster to ask: set KUBECONFIG, or run inside one")?;
    let (namespace, name) = match asked.synchronizer.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (
            asked
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            asked.synchronizer.clone(),
        ),
    };
    let user = username(&client).await?;
    let synchronizers: Api<Synchronizer> = Api::namespaced(client.clone(), &namespace);
    let synchronizer = synchronizers
        .get_opt(&name)
        .await?
        .with_context(|| {
            format!(
                "synchronizer {name} is not declared in namespace {namespace}; `kubectl get synchronizers -n {namespace}` lists them"
            )
        })?;
    let structure = synchronizer.spec.structure_ref.name;
    let resyncs: Api<Resync> = Api::namespaced(client, &namespace);
    let mut object = Resync::new(
        "",
        ResyncSpec {
            synchronizer_ref: LocalRef { name: name.clone() },
            direction: match asked.direction {
                Direction::Into => SyncDirection::Into,
                Direction::From => SyncDirection::From,
            },
            approved_plan: asked.approve.clone(),
            enable_after: false,
            run_as: asked.run_as.clone().map(|name| RunAs {
                secret_ref: SecretKeyRef::named(name),
            }),
        },
    );
    object.metadata = ObjectMeta {
        generate_name: Some(format!("{name}-{}-", asked.direction)),
        namespace: Some(namespace.clone()),
        labels: Some([(STRUCTURE_LABEL.to_owned(), structure.clone())].into()),
        annotations: Some([(REQUESTED_BY_ANNOTATION.to_owned(), user.clone())].into()),
        ..ObjectMeta::default()
    };
    let created = resyncs
        .create(&PostParams::default(), &object)
        .await
        .map_err(refusal)?;
    let synchronizer = name;
    let name = created.metadata.name.unwrap_or_default();
    eprintln!(
        "created Resync {namespace}/{name} of {synchronizer} ({}) on structure {structure}, requested by {user}",
        asked.direction
    );
    let deadline = Instant::now() + asked.timeout;
    let mut shown = String::new();
    loop {
        let status = resyncs.get(&name).await?.status.unwrap_or_default();
        let line = progress(&status);
        if line != shown {
            eprintln!("{line}");
            shown = line;
        }
        match status.phase {
            Some(ResyncPhase::Succeeded) => {
                println!("{}", plan_lines(&status));
                println!("applied: Resync {namespace}/{name} succeeded");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            Some(ResyncPhase::Failed) => {
                bail!(
                    "Resync {namespace}/{name} failed: {}",
                    status.errors.join("; ")
                )
            }
            Some(ResyncPhase::AwaitingApproval) => {
                println!("{}", plan_lines(&status));
                let hash = status.plan.as_ref().map_or("", |p| p.hash.as_str());
                bail!(
                    "not applied: the plan is destructive and waits for approval; approve exactly it with\n  kubectl patch resync {name} -n {namespace} --type merge -p '{{\"spec\":{{\"approvedPlan\":\"{hash}\"}}}}'"
                )
            }
            _ if Instant::now() >= deadline => bail!(
                "Resync {namespace}/{name} has not finished within {}s ({shown}); it goes on in the cluster: `kubectl get resync {name} -n {namespace}`",
                asked.timeout.as_secs()
            ),
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Who the cluster says the caller is (a SelfSubjectReview).
async fn username(client: &Client) -> anyhow::Result<String> {
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .context("asking the cluster who you are (SelfSubjectReview)")?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .context("the cluster did not say who you are (SelfSubjectReview)")
}

/// The admission policy's refusal as the person should read it.
fn refusal(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => {
            anyhow::anyhow!("the cluster refused the Resync: {}", status.message)
        }
        other => other.into(),
    }
}

/// The phase, with the work done and why it waits, if it does.
fn progress(status: &ResyncStatus) -> String {
    let phase = status.phase.map_or("Pending", |p| p.as_str());
    let mut line = phase.to_owned();
    if let (Some(done), Some(total)) = (status.done, status.total) {
        line.push_str(&format!(" {done}/{total}"));
    }
    let stalled = |c: &&Condition| c.type_ == "Stalled" && c.status == "True";
    if let Some(message) = status
        .conditions
        .iter()
        .find(stalled)
        .and_then(|c| c.message.as_deref())
    {
        line.push_str(&format!(": {message}"));
    }
    line
}

/// The plan's hash, summary and outline excerpt, as the controller made it.
fn plan_lines(status: &ResyncStatus) -> String {
    let Some(plan) = &status.plan else {
        return "no plan".to_owned();
    };
    let mut text = format!("Plan {}: {}", plan.hash, plan.summary);
    if let Some(diff) = &plan.diff_excerpt {
        text.push('\n');
        text.push_str(diff);
    }
    text
}
