use super::*;

use crate::clock::now_ms;

fn config(name: &str) -> PipelineConfig {
    PipelineConfig::new(name, vec!["in".into()], Vec::new(), "out", "dlq")
}

#[test]
fn pipelines_show_their_partitions_plugins_and_failures() {
    let status = Status::default();
    let a = Arc::new(PipelineStatus::new(
        &config("a"),
        vec![("p".into(), "sha256:1".into())],
    ));
    status.started(a.clone());
    a.assigned([("in", 1), ("in", 0)]);
    a.revoked("in", 1);
    a.swapped(vec![("p".into(), "sha256:2".into())]);
    status.failed(&config("b"), "no luck".into());
    status.instance("pod-7");

    let view = serde_json::to_value(status.view()).expect("serializes");
    assert_eq!(view["instance_id"], "pod-7");
    let pipelines = view["pipelines"].as_array().expect("a list");
    assert_eq!(pipelines.len(), 2);
    assert_eq!(pipelines[0]["name"], "a");
    assert_eq!(pipelines[0]["state"], "running");
    assert_eq!(
        pipelines[0]["assigned"],
        serde_json::json!([{"topic": "in", "partition": 0}])
    );
    assert_eq!(pipelines[0]["revocations"], 1);
    assert_eq!(pipelines[0]["plugins"][0]["digest"], "sha256:2");
    assert_eq!(pipelines[1]["state"], "failed");
    assert_eq!(pipelines[1]["error"], "no luck");

    status.started(Arc::new(PipelineStatus::new(&config("b"), Vec::new())));
    status.stopped("a");
    let view = status.view();
    let names: Vec<(&str, &str)> = view
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), p.state))
        .collect();
    assert_eq!(names, [("b", "running")]);
}

#[test]
fn ready_once_every_pipeline_joined_and_not_while_failed_or_draining() {
    let status = Status::default();
    assert_eq!(status.readiness(now_ms()), Ok(()), "nothing configured");
    let a = Arc::new(PipelineStatus::new(&config("a"), Vec::new()));
    status.started(a.clone());
    assert_eq!(
        status.readiness(now_ms()),
        Err("pipeline `a` has not joined its group yet".into())
    );
    // Joined with no partitions (another member holds them all).
    a.joined();
    assert_eq!(status.readiness(now_ms()), Ok(()));
    assert_eq!(
        serde_json::to_value(status.view()).expect("serializes")["pipelines"][0]["joined"],
        true
    );

    status.failed(&config("b"), "no luck".into());
    assert_eq!(
        status.readiness(now_ms()),
        Err("pipeline `b` is not running".into())
    );
    status.stopped("b");

    // A rebalance took its partition; a short one keeps it ready.
    a.assigned([("in", 0)]);
    a.revoked("in", 0);
    assert_eq!(status.readiness(now_ms()), Ok(()));
    let later = now_ms() + REBALANCE_BOUND_MS + 2_000;
    let long = status.readiness(later).expect_err("rebalancing for long");
    assert!(
        long.starts_with("pipeline `a` has been rebalancing for 3"),
        "{long}"
    );
    a.joined();
    assert_eq!(status.readiness(later), Ok(()), "assigned again");

    status.draining();
    assert_eq!(
        status.readiness(now_ms()),
        Err("draining: the process is stopping".into())
    );
}

#[test]
fn a_partition_being_restored_or_stopped_shows_and_a_stopped_one_is_not_ready() {
    let status = Status::default();
    let a = Arc::new(PipelineStatus::new(&config("a"), Vec::new()));
    status.started(a.clone());
    a.assigned([("in", 0), ("in", 1)]);
    a.joined();
    a.restoring("in", 0, true);
    a.restoring("in", 1, true);
    let view = || serde_json::to_value(status.view()).expect("serializes")["pipelines"][0].clone();
    assert_eq!(
        view()["restoring"],
        serde_json::json!([{"topic": "in", "partition": 0}, {"topic": "in", "partition": 1}])
    );
    assert_eq!(
        status.readiness(now_ms()),
        Ok(()),
        "restoring is not unready"
    );

    a.restoring("in", 0, false);
    a.restoring("in", 1, false);
    a.stopped("in", 1, Some("a record Sluice cannot read".into()));
    assert_eq!(view()["restoring"], serde_json::json!([]));
    assert_eq!(
        view()["stopped"],
        serde_json::json!([{"topic": "in", "partition": 1, "why": "a record Sluice cannot read"}])
    );
    assert_eq!(
        status.readiness(now_ms()),
        Err("pipeline `a`: partition in/1 is stopped: a record Sluice cannot read".into())
    );
    // Assigned elsewhere, or restored on a later assignment: gone.
    a.revoked("in", 1);
    a.joined();
    assert_eq!(view()["stopped"], serde_json::json!([]));
    assert_eq!(status.readiness(now_ms()), Ok(()));
}

#[test]
fn unhealthy_when_a_poll_thread_ends_or_stops_beating() {
    let status = Status::default();
    let a = Arc::new(PipelineStatus::new(&config("a"), Vec::new()));
    status.started(a.clone());
    let now = now_ms();
    a.heartbeat();
    assert_eq!(status.liveness(now), Ok(()));
    let later = now_ms() + HEARTBEAT_BOUND_MS + 1_000;
    let stuck = status
        .liveness(later)
        .expect_err("no heartbeat for too long");
    assert!(
        stuck.starts_with("pipeline `a`: its poll thread is stuck"),
        "{stuck}"
    );
    a.poll_thread_ended();
    assert_eq!(
        status.liveness(now),
        Err("pipeline `a`: its poll thread ended".into())
    );
}

#[test]
fn the_reload_history_is_bounded_and_tagged_by_kind() {
    let status = Status::default();
    for i in 0..RELOAD_HISTORY + 3 {
        status.reloaded(Reload::Config {
            at_ms: i as i64,
            outcome: Outcome::Ok,
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            error: None,
        });
    }
    let view = serde_json::to_value(status.view()).expect("serializes");
    let reloads = view["reloads"].as_array().expect("a list");
    assert_eq!(reloads.len(), RELOAD_HISTORY);
    assert_eq!(reloads[0]["at_ms"], 3, "the oldest went first");
    assert_eq!(reloads[0]["kind"], "config");
    assert_eq!(reloads[0]["outcome"], "ok");
}
