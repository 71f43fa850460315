use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::config::Config;
use crate::kafka::Writer;
use crate::kafka::embedded::EmbeddedKafka;

/// The mock cluster with a changelog `c` of 2 partitions holding
/// `records` (partition, key, value, source offset), and a restorer
/// of a pipeline with steps `a` and `b` and `on_corrupt`.
fn restorer_over(
    records: &[(i32, &[u8], Option<&str>, i64)],
    on_corrupt: &str,
) -> (EmbeddedKafka, Restorer) {
    let kafka = EmbeddedKafka::start().expect("the mock cluster");
    kafka.create_topic("c", 2).expect("the changelog");
    let mut writer = Writer::to(kafka.bootstrap(), &[]).expect("a producer");
    for (partition, key, value, source) in records {
        let change = Change {
            partition: *partition,
            key: key.to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
            source_topic: Arc::from("in"),
            source_offset: source.to_string(),
        };
        writer.send(change.record("c")).expect("queued");
    }
    writer.flush(Duration::from_secs(10)).expect("written");
    let text = format!(
        "[kafka]\nbrokers = \"{}\"\n[plugins]\ndir = \"plugins\"\n[[pipeline]]\n\
         name = \"r\"\ninputs = [\"in\"]\noutput = \"out\"\ndlq = \"dlq\"\n\
         chain = [{{ plugin = \"a\" }}, {{ plugin = \"b\" }}]\n\
         [pipeline.state]\nchangelog = \"c\"\non_corrupt = \"{on_corrupt}\"\n",
        kafka.bootstrap()
    );
    let config = Config::parse(&text, Path::new("r.toml")).expect("a valid file");
    let restorer = Restorer::new(&config.kafka, kafka.bootstrap(), &config.pipelines[0])
        .expect("the restorer");
    (kafka, restorer)
}

fn entries(state: &Restored) -> Vec<Vec<(String, String)>> {
    state
        .iter()
        .map(|step| {
            step.iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_restore_replays_each_partition_in_order_per_step() {
    let a = |k: &str| record_key("a", k.as_bytes());
    let b = |k: &str| record_key("b", k.as_bytes());
    let gone = record_key("removed-step", b"k");
    let (_kafka, restorer) = restorer_over(
        &[
            (0, &a("x"), Some("1"), 0),
            (0, &b("x"), Some("b1"), 0),
            (0, &a("y"), Some("2"), 1),
            (0, &a("x"), Some("3"), 2),
            (0, &a("y"), None, 3),
            (0, &gone, Some("old"), 3),
            (1, &a("x"), Some("p1"), 0),
        ],
        "stop",
    );
    let started = Instant::now();
    let restored = restorer.restore(&[0, 1], None, &|| false);
    assert!(
        started.elapsed() < END_IDLE,
        "ended by the end of each partition"
    );
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        entries(restored[&0].as_ref().expect("restored")),
        [vec![s("x", "3")], vec![s("x", "b1")]],
        "the latest value of each key; a tombstone removes; a step no longer in the chain is left out"
    );
    assert_eq!(
        entries(restored[&1].as_ref().expect("restored")),
        [vec![s("x", "p1")], vec![]]
    );
    // Partitions are restored separately, and again from the start.
    let again = restorer.restore(&[1], None, &|| false);
    assert_eq!(again.len(), 1);
    assert_eq!(
        entries(again[&1].as_ref().expect("restored"))[0],
        [s("x", "p1")]
    );
}

#[test]
fn under_exactly_once_what_uncommitted_work_wrote_is_left_out() {
    let a = |k: &str| record_key("a", k.as_bytes());
    let (_kafka, restorer) = restorer_over(
        &[
            (0, &a("x"), Some("committed"), 4),
            // Written by a batch that ended at offset 9, never committed
            // (its transaction was aborted, and this broker shows it).
            (0, &a("x"), Some("aborted"), 9),
            (0, &a("y"), Some("aborted"), 9),
        ],
        "stop",
    );
    let committed = |topic: &str, partition: i32| (topic, partition).eq(&("in", 0)).then_some(5);
    let restored = restorer.restore(&[0], Some(&committed), &|| false);
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        entries(restored[&0].as_ref().expect("restored"))[0],
        [s("x", "committed")]
    );
    // Nothing committed at all: no state.
    let nothing = |_: &str, _: i32| None;
    let restored = restorer.restore(&[0], Some(&nothing), &|| false);
    assert!(entries(restored[&0].as_ref().expect("restored"))[0].is_empty());
}

#[test]
fn a_record_sluice_cannot_read_stops_its_partition_unless_skipped() {
    let a = |k: &str| record_key("a", k.as_bytes());
    let records: &[(i32, &[u8], Option<&str>, i64)] = &[
        (0, &a("x"), Some("1"), 0),
        (0, b"no separator", Some("?"), 1),
        (0, &a("x"), Some("2"), 2),
        (1, &a("x"), Some("fine"), 0),
    ];
    let (_kafka, stop) = restorer_over(records, "stop");
    let restored = stop.restore(&[0, 1], None, &|| false);
    match &restored[&0] {
        Err(
            e @ RestoreError::Corrupt {
                partition: 0,
                offset: 1,
                ..
            },
        ) => {
            let message = e.to_string();
            assert!(message.contains("no step name"), "{message}");
            assert!(message.contains("state.on_corrupt = \"skip\""), "{message}");
        }
        other => panic!("expected a corrupt record at 0/1, got {other:?}"),
    }
    assert!(restored[&1].is_ok(), "the other partition is restored");

    let (_kafka, skip) = restorer_over(records, "skip");
    let restored = skip.restore(&[0], None, &|| false);
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        entries(restored[&0].as_ref().expect("restored"))[0],
        [s("x", "2")]
    );
}

#[test]
fn a_changelog_with_too_few_partitions_is_an_error_naming_the_fix() {
    let (_kafka, restorer) = restorer_over(&[], "stop");
    let restored = restorer.restore(&[0, 2], None, &|| false);
    assert!(restored[&0].is_ok());
    match &restored[&2] {
        Err(
            e @ RestoreError::TooFewPartitions {
                has: 2,
                partition: 2,
                ..
            },
        ) => {
            assert!(
                e.to_string().contains("as many partitions as the input"),
                "{e}"
            );
        }
        other => panic!("expected too few partitions, got {other:?}"),
    }
}

#[test]
fn record_keys_carry_the_step_and_split_back() {
    let key = record_key("account-balance", b"account/\0ACC-1");
    assert_eq!(
        split_key(&key),
        Ok(("account-balance", &b"account/\0ACC-1"[..])),
        "the first NUL ends the step name; the plugin's key may hold more"
    );
    assert!(split_key(b"no separator").is_err());
    assert!(split_key(b"\0key").is_err(), "an empty step name");
    assert!(
        split_key(b"\xff\0key").is_err(),
        "a step name that is not UTF-8"
    );
}
