//! What a reload changes, and the retry backoff.

use super::*;

#[test]
fn backoff_doubles_up_to_the_cap() {
    let retry = RetryPolicy::default();
    let ms = |n| Duration::from_millis(n);
    let delays: Vec<_> = (0..=8).map(|a| retry.backoff_for(a)).collect();
    assert_eq!(
        delays,
        [
            ms(0),
            ms(100),
            ms(200),
            ms(400),
            ms(800),
            ms(1600),
            ms(3200),
            ms(5000),
            ms(5000)
        ]
    );
    assert_eq!(retry.backoff_for(40), ms(5000));
    assert_eq!(retry.backoff_for(u32::MAX), ms(5000));
    let huge = RetryPolicy {
        attempts: 3,
        backoff: Duration::MAX,
        max_backoff: Duration::MAX,
    };
    assert_eq!(huge.backoff_for(3), Duration::MAX);
}

#[test]
fn restart_required_lists_kafka_and_plugin_dir_changes() {
    let old = parse_ok(MINIMAL);
    assert!(restart_required(&old, &old).is_empty());

    // A pipeline change is applied live: not listed.
    let new = parse_ok(&MINIMAL.replace("\"orders-out\"", "\"elsewhere\""));
    assert!(restart_required(&old, &new).is_empty());

    let changed = MINIMAL
        .replace("\"embedded\"", "\"k:9092\"\nclient_id = \"me\"")
        .replace("dir = \"plugins\"", "dir = \"/opt/plugins\"")
        .replace(
            "[plugins]",
            "[kafka.consumer]\n\"fetch.wait.max.ms\" = 10\n[plugins]",
        );
    let new = parse_ok(&changed);
    assert_eq!(
        restart_required(&old, &new),
        [
            "kafka.brokers: `embedded` -> `k:9092`".to_owned(),
            "kafka.client_id: `sluice` -> `me`".to_owned(),
            "kafka.consumer.\"fetch.wait.max.ms\": (unset) -> `10`".to_owned(),
            format!("plugins.dir: {} -> /opt/plugins", old.plugins_dir.display()),
        ]
    );
    assert_eq!(
        restart_required(&new, &old)[2],
        "kafka.consumer.\"fetch.wait.max.ms\": `10` -> (unset)"
    );
}

#[test]
fn pipeline_diff() {
    let two = |first_output: &str, second: &str| {
        parse_ok(&format!(
            "{}[[pipeline]]\nname = \"{second}\"\ninputs = [\"i\"]\nplugin = \"p\"\n\
             output = \"o\"\ndlq = \"d\"\n",
            MINIMAL.replace("orders-out", first_output)
        ))
    };
    let old = two("orders-out", "b");
    assert!(diff_pipelines(&old, &old).is_empty());
    // Moving a pipeline around the file (comments, blank lines) changes
    // nothing.
    let moved = parse_ok(&format!("# moved\n\n{}", old_text_of_two()));
    assert!(diff_pipelines(&old, &moved).is_empty());
    assert_eq!(old.pipelines, moved.pipelines);

    let new = two("orders-elsewhere", "c");
    assert_eq!(
        diff_pipelines(&old, &new),
        PipelineDiff {
            added: vec!["c".into()],
            removed: vec!["b".into()],
            changed: vec!["orders".into()],
        }
    );
}

fn old_text_of_two() -> String {
    format!(
        "{MINIMAL}[[pipeline]]\nname = \"b\"\ninputs = [\"i\"]\nplugin = \"p\"\n\
         output = \"o\"\ndlq = \"d\"\n"
    )
}
