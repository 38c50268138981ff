//! The engine through its library API, where the command line cannot reach:
//! a failure in the middle of applying a run.

use trellis::engine::{Approval, Engine, EngineError, Scope};
use trellis::spec::Catalog;
use trellis::store::{SqliteStore, Store};

/// A tracker, a structure declaring A-1 with A-2 under it, and a subtasks
/// synchronizer exporting that: planning sets A-2's parent in the tracker.
fn declare(dir: &std::path::Path, name: &str) {
    std::fs::write(
        dir.join(format!("{name}-issues.yaml")),
        "issues:\n- {key: A-1, summary: Epic, type: Epic, status: Open}\n- {key: A-2, summary: Story, type: Story, status: Open}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: {name}}}\nspec: {{type: local, local: {{path: {name}-issues.yaml}}}}\n---\n\
             apiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: {name}}}\nspec:\n  trackerRef: {{name: {name}}}\n  rows: [{{issue: A-1, rows: [{{issue: A-2}}]}}]\n---\n\
             apiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {{name: {name}-export}}\nspec: {{structureRef: {{name: {name}}}, type: subtasks, directions: [from]}}\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn one_structure_failing_does_not_hold_back_the_others_and_both_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    declare(dir.path(), "first");
    declare(dir.path(), "second");
    let catalog = Catalog::load(&[dir.path().to_owned()]).unwrap();
    let mut engine = Engine::new(
        SqliteStore::open(&dir.path().join("trellis.db")).unwrap(),
        "alice",
    );
    let run = engine.plan(&catalog, &Scope::Apply).await.unwrap();
    assert_eq!(run.set.summary.tracker_updates, 2);

    // Someone edits the second tracker after the plan was made.
    let second = dir.path().join("second-issues.yaml");
    let edited = std::fs::read_to_string(&second)
        .unwrap()
        .replace("summary: Story", "summary: Renamed story");
    std::fs::write(&second, edited).unwrap();

    let error = engine
        .apply(&catalog, run, &Approval::None)
        .await
        .unwrap_err();
    let EngineError::PartlyApplied { applied, failed } = &error else {
        panic!("{error}")
    };
    assert_eq!(applied, &[("default/first".to_owned(), 1)]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "default/second");
    assert!(
        failed[0]
            .1
            .contains("changed between planning and applying"),
        "{error}"
    );
    let first = std::fs::read_to_string(dir.path().join("first-issues.yaml")).unwrap();
    assert!(
        first.contains("parent: A-1"),
        "the first tracker was written"
    );
    assert!(
        !std::fs::read_to_string(&second)
            .unwrap()
            .contains("parent: A-1")
    );
    assert_eq!(
        engine.store().structure("default/second").unwrap().version,
        0
    );
}
