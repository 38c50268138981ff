//! The actions (POST, CSRF token checked before any of them): moving a
//! row, approving and applying a plan, planning and applying an undo,
//! releasing held issues and restarting a stopped synchronizer. Each asks
//! the engine, which decides as it does for the command line; a refusal is
//! an error page and changes nothing.

use super::html::url;
use super::pages::plan_section;
use super::{Asked, Object, Person, Reply, Ui, Verb, WebError};
use crate::engine::{Approval, Engine, Scope};
use crate::plan::decide::Release;
use crate::spec::Kind;
use crate::store::SqliteStore;

pub(super) async fn act(
    segments: &[&str],
    asked: &Asked,
    ui: &Ui,
    person: &Person,
) -> Result<Reply, WebError> {
    let local = ui.cluster().is_none();
    match segments {
        ["structures", ns, name, "move"] => {
            move_row(&format!("{ns}/{name}"), asked, ui, person).await
        }
        ["synchronizers", ns, name, "release"] => {
            release(&format!("{ns}/{name}"), asked, ui, person).await
        }
        ["approve"] if !local => approve(asked, ui, person).await,
        ["synchronizers", ns, name, "enabled"] if !local => {
            start_or_stop(&format!("{ns}/{name}"), asked, ui, person).await
        }
        // Applying and undoing read the trackers with the command line's
        // keys; in a cluster a Resync does that, approved above.
        ["apply"] if local => apply(asked, ui, person).await,
        ["undo"] if local => plan_undo(asked, ui, person).await,
        ["undo", "apply"] if local => apply_undo(asked, ui, person).await,
        _ => Err(WebError::not_found("there is no such action")),
    }
}

fn required<'a>(asked: &'a Asked, field: &str, what: &str) -> Result<&'a str, WebError> {
    asked.field(field).ok_or_else(|| {
        WebError::new(
            hyper::StatusCode::BAD_REQUEST,
            format!("the form has no {field}: {what}"),
        )
    })
}

/// An engine on the store that journals `person` as the author.
fn writer(ui: &Ui, person: &Person) -> Result<Engine<SqliteStore>, WebError> {
    Ok(Engine::new(
        SqliteStore::open(&ui.state)?,
        person.name.clone(),
    ))
}

async fn move_row(id: &str, asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let key = required(asked, "key", "the row to move")?;
    let mut engine = writer(ui, person)?;
    let catalog = ui.catalog(engine.store())?;
    let id = catalog.resolve(Kind::Structure, id)?;
    ui.allow(person, Verb::Edit, &id).await?;
    let version = engine.move_row(&id, key, asked.field("under"), asked.field("after"))?;
    tracing::info!(structure = %id, key, version, author = %person.name, "row moved in the UI");
    // Back to the page the move was made on, and to the row.
    let back = asked
        .field("back")
        .filter(|b| b.starts_with(&format!("/structures/{id}?")))
        .map_or_else(|| format!("/structures/{id}"), str::to_owned);
    Ok(Reply::Redirect(format!("{back}#moved-{}", url(key))))
}

/// Retry, skip or keep the structure's side of a held issue, or restart a
/// synchronizer the cycle guard stopped: the next pass acts on it.
async fn release(id: &str, asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let mut engine = writer(ui, person)?;
    let catalog = ui.catalog(engine.store())?;
    let id = catalog.resolve(Kind::Synchronizer, id)?;
    let structure = catalog
        .resolved_synchronizer(&id)
        .map(|r| r.structure.clone())
        .unwrap_or_default();
    ui.allow(person, Verb::Control, &structure).await?;
    let action = required(asked, "action", "retry, skip, keep-structure or restart")?;
    let releases = match action {
        "restart" => engine.check_releases(&id, Vec::new(), true)?,
        _ => {
            let release = match action {
                "retry" => Some(Release::Retry),
                "keep-structure" => Some(Release::KeepStructure),
                "skip" => None,
                other => {
                    return Err(WebError::new(
                        hyper::StatusCode::BAD_REQUEST,
                        format!("{other} is not an action: retry, skip, keep-structure or restart"),
                    ));
                }
            };
            let key = required(asked, "key", "the held issue")?;
            engine.check_releases(&id, vec![(key.to_owned(), release)], false)?
        }
    };
    engine.release(releases)?;
    Ok(Reply::Redirect(format!("/synchronizers/{id}")))
}

/// Applies one of the plans page's runs, only if it is still exactly the
/// plan the person approved (its hash): a stale approval is refused.
async fn apply(asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let hash = required(asked, "hash", "the plan's hash")?;
    let mut engine = writer(ui, person)?;
    let catalog = ui.catalog(engine.store())?;
    let scope = match asked.field("run") {
        Some(resync) => Scope::of_resync(&catalog, resync)?,
        None => Scope::Apply,
    };
    let run = engine.plan_to_apply(&catalog, &scope).await?;
    let title = format!("Plan {}", run.set.hash);
    start(ui, person, engine, catalog, run, hash, title)
}

/// Starts an approved run in the background and shows its page: a stale
/// approval (the plan changed since the person saw it) is refused first,
/// and nothing runs.
fn start(
    ui: &Ui,
    person: &Person,
    engine: Engine<SqliteStore>,
    catalog: std::sync::Arc<crate::spec::Catalog>,
    run: crate::engine::Run,
    hash: &str,
    title: String,
) -> Result<Reply, WebError> {
    let approval = Approval::given(Some(hash));
    engine.may_apply(&run, &approval)?;
    let id = ui.start(title, &person.name, engine, catalog, run, approval);
    tracing::info!(hash, run = id, author = %person.name, "run started in the UI");
    Ok(Reply::Redirect(format!("/runs/{id}")))
}

/// Plans the reverse of a job and shows it, with a button approving it.
async fn plan_undo(asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let job = job_number(asked)?;
    let store = ui.reader()?;
    let catalog = ui.catalog(&store)?;
    let engine = Engine::new(store, person.name.clone());
    let scope = engine.undo_scope(job)?;
    let run = engine.plan(&catalog, &scope).await?;
    let job_field = job.to_string();
    let body = plan_section(
        &format!("Undo of job {job}"),
        &run,
        "/undo/apply",
        &[("job", &job_field)],
        ui,
    );
    Ok(Reply::Html(ui.page(
        &format!("Undo job {job}"),
        Some(person),
        &body,
    )))
}

async fn apply_undo(asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let job = job_number(asked)?;
    let hash = required(asked, "hash", "the plan's hash")?;
    let mut engine = writer(ui, person)?;
    let catalog = ui.catalog(engine.store())?;
    let scope = engine.undo_scope(job)?;
    let run = engine.plan_to_apply(&catalog, &scope).await?;
    start(
        ui,
        person,
        engine,
        catalog,
        run,
        hash,
        format!("Undo of job {job}"),
    )
}

fn job_number(asked: &Asked) -> Result<u64, WebError> {
    let job = required(asked, "job", "the job to undo")?;
    job.parse().map_err(|_| {
        WebError::new(
            hyper::StatusCode::BAD_REQUEST,
            format!("{job} is not a job number"),
        )
    })
}

/// In a cluster: sets a held plan's `spec.approvedPlan`, as the person
/// (their token: RBAC and the admission policy judge it as theirs). The
/// controller then applies the plan only if it still has that hash.
async fn approve(asked: &Asked, ui: &Ui, person: &Person) -> Result<Reply, WebError> {
    let hash = required(asked, "hash", "the plan's hash")?;
    let id = required(asked, "id", "what holds the plan")?;
    let object = match required(asked, "holder", "resync or synchronizer")? {
        "resync" => Object::Resync,
        "synchronizer" => Object::Synchronizer,
        other => {
            return Err(WebError::new(
                hyper::StatusCode::BAD_REQUEST,
                format!("{other} holds no plan: resync or synchronizer"),
            ));
        }
    };
    let spec = serde_json::json!({ "approvedPlan": hash });
    change_as_person(ui, person, object, id, spec).await?;
    tracing::info!(%id, hash, person = %person.name, "plan approved in the UI");
    Ok(Reply::Redirect("/plans".to_owned()))
}

/// In a cluster: starts or stops a synchronizer (`spec.enabled`), as the
/// person, as Backbone's overview does. (`trellis ui` does not: there the
/// declarations are files, which Git keeps.)
async fn start_or_stop(
    id: &str,
    asked: &Asked,
    ui: &Ui,
    person: &Person,
) -> Result<Reply, WebError> {
    let enabled = match required(asked, "enabled", "true or false")? {
        "true" => true,
        "false" => false,
        other => {
            return Err(WebError::new(
                hyper::StatusCode::BAD_REQUEST,
                format!("enabled is true or false, not {other}"),
            ));
        }
    };
    let spec = serde_json::json!({ "enabled": enabled });
    change_as_person(ui, person, Object::Synchronizer, id, spec).await?;
    tracing::info!(%id, enabled, person = %person.name, "synchronizer started or stopped in the UI");
    Ok(Reply::Redirect("/".to_owned()))
}

/// Merges `spec` into the Resync or Synchronizer `id` with the person's own
/// token, once the cluster said they may control its structure (the API
/// server checks again: RBAC and the admission policy).
async fn change_as_person(
    ui: &Ui,
    person: &Person,
    object: Object,
    id: &str,
    spec: serde_json::Value,
) -> Result<(), WebError> {
    let cluster = ui
        .cluster()
        .ok_or_else(|| WebError::not_found("no cluster"))?;
    let catalog = cluster.catalog();
    let synchronizer = match object {
        Object::Synchronizer => Some(id.to_owned()),
        Object::Resync => catalog
            .resyncs
            .iter()
            .find(|r| r.id() == id)
            .map(|r| r.resource.synchronizer_id()),
    };
    let structure = synchronizer
        .and_then(|s| {
            catalog
                .resolved_synchronizer(&s)
                .map(|r| r.structure.clone())
        })
        .ok_or_else(|| WebError::not_found(format!("{id} is not declared")))?;
    ui.allow(person, Verb::Control, &structure).await?;
    cluster
        .change_spec(person, object, id, spec)
        .await
        .map_err(|why| WebError::new(hyper::StatusCode::FORBIDDEN, why))
}
