//! Durable plugin state in running pipelines, on tansu, with the
//! `account-balance` example (the tutorial's event sourcing): state
//! restored from the changelog after a restart and a kill -9, moved with a
//! rebalance between two processes, exact balances under exactly-once,
//! and a changelog record Sluice cannot read stopping its partition unless
//! the pipeline says to skip it.
//!
//! What tansu 0.6 cannot show: it serves the records of aborted
//! transactions to `read_committed` readers (Kafka does not). The kill -9
//! test therefore checks that the only repeated outputs are exactly the
//! ones the killed process left in its open transaction, which a Kafka
//! broker hides from `read_committed` readers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use sluice_testkit::kafka::{Reader, Record, TestProducer, produce};
use sluice_testkit::sluice::{Scene, SluiceProcess};

const INPUT: &str = "account-events";
const OUTPUT: &str = "account-balances";
const DLQ: &str = "account-events-dlq";
const CHANGELOG: &str = "balances-changelog";
const WAIT: Duration = Duration::from_secs(120);
/// Restores so far (one observation per assignment or abort).
const RESTORES: &str = "sluice_state_restore_duration_seconds_count{pipeline=\"balances\"}";

// ---------------------------------------------------------------------------
// The ledger: account events and what they must lead to
// ---------------------------------------------------------------------------

/// Generates account events and keeps the balances they must lead to.
struct Ledger {
    /// Balance and version (events applied) per account.
    accounts: BTreeMap<String, (u64, u64)>,
    /// Valid events so far: one output each.
    valid: usize,
    /// Overdrafts so far: one dead letter each.
    invalid: usize,
    seed: u64,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            accounts: BTreeMap::new(),
            valid: 0,
            invalid: 0,
            seed: 0x5eed,
        }
    }

    fn next(&mut self, below: u64) -> u64 {
        // A 64-bit LCG (Knuth's MMIX constants): the same events every run.
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.seed >> 33) % below
    }

    /// Opens `accounts` accounts (if new), then `n` deposits and
    /// withdrawals spread over them; some withdrawals overdraw.
    fn events(&mut self, accounts: usize, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let event = |id: &str, kind: &str, amount: u64| {
            (
                id.to_owned(),
                format!(r#"{{"account_id":"{id}","type":"{kind}","amount":{amount}}}"#),
            )
        };
        for a in 0..accounts {
            let id = format!("ACC-{a}");
            if let std::collections::btree_map::Entry::Vacant(new) = self.accounts.entry(id) {
                out.push(event(new.key(), "CREATED", 0));
                new.insert((0, 1));
                self.valid += 1;
            }
        }
        for _ in 0..n {
            let id = format!("ACC-{}", self.next(accounts as u64));
            let amount = 1 + self.next(100);
            let deposit = self.next(10) < 6;
            let Some((balance, version)) = self.accounts.get_mut(&id) else {
                continue;
            };
            if deposit {
                *balance += amount;
            } else if amount <= *balance {
                *balance -= amount;
            } else {
                self.invalid += 1;
                out.push(event(&id, "WITHDRAWN", amount));
                continue;
            }
            *version += 1;
            self.valid += 1;
            out.push(event(
                &id,
                if deposit { "DEPOSITED" } else { "WITHDRAWN" },
                amount,
            ));
        }
        out
    }
}

/// An output: (account, balance, version).
fn balance_of(record: &Record) -> (String, u64, u64) {
    let v = record.json();
    (
        v["account_id"].as_str().unwrap_or_default().to_owned(),
        v["balance"].as_u64().unwrap_or(u64::MAX),
        v["version"].as_u64().unwrap_or(u64::MAX),
    )
}

/// The outputs without repeats, checked for consistency: per account,
/// versions 1..=n with no gap, each with one balance.
fn distinct(outputs: &[Record]) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let mut accounts: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for record in outputs {
        let (account, balance, version) = balance_of(record);
        let versions = accounts.entry(account.clone()).or_default();
        if let Some(seen) = versions.insert(version, balance) {
            assert_eq!(
                seen, balance,
                "{account} version {version} has two balances: {seen} and {balance}"
            );
        }
    }
    for (account, versions) in &accounts {
        let n = versions.len() as u64;
        assert_eq!(
            versions.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{account}: versions with a gap (state lost or applied twice)"
        );
    }
    accounts
}

/// The latest balance and version of every account in `outputs`.
fn latest(outputs: &[Record]) -> BTreeMap<String, (u64, u64)> {
    distinct(outputs)
        .into_iter()
        .filter_map(|(account, versions)| {
            let (version, balance) = versions.into_iter().next_back()?;
            Some((account, (balance, version)))
        })
        .collect()
}

/// How many distinct outputs `outputs` holds.
fn distinct_count(outputs: &[Record]) -> usize {
    outputs
        .iter()
        .map(|r| {
            let (account, _, version) = balance_of(r);
            (account, version)
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// Reads the outputs until every expected one is there, then until quiet.
fn wait_outputs(scene: &Scene, ledger: &Ledger, who: &[&SluiceProcess]) -> Vec<Record> {
    let mut reader = Reader::new(&scene.bootstrap(), &[OUTPUT]);
    let done = reader.read_until(WAIT, |records| distinct_count(records) >= ledger.valid);
    let outputs = reader.records().to_vec();
    assert!(
        done,
        "{} of {} outputs\n{}",
        distinct_count(&outputs),
        ledger.valid,
        who.iter().map(|p| p.describe()).collect::<String>()
    );
    reader.settle(Duration::from_secs(1), Duration::from_secs(10));
    reader.records().to_vec()
}

/// A tansu broker with the pipeline's topics (3 partitions each).
fn scene() -> Scene {
    let scene = Scene::new();
    scene.create_topics(&[(INPUT, 3), (OUTPUT, 3), (DLQ, 3)]);
    scene
}

/// The `balances` pipeline over `account-balance`.
fn config(scene: &Scene, delivery: &str, state: &str) -> PathBuf {
    config_of(scene, "account-balance", delivery, state)
}

/// The `balances` pipeline over `plugin`.
fn config_of(scene: &Scene, plugin: &str, delivery: &str, state: &str) -> PathBuf {
    let text = format!(
        "{}\n[[pipeline]]\nname = \"balances\"\ninputs = [\"{INPUT}\"]\n\
         plugin = \"{plugin}\"\noutput = \"{OUTPUT}\"\ndlq = \"{DLQ}\"\n\
         delivery = \"{delivery}\"\nworkers = 2\n[pipeline.state]\nchangelog = \"{CHANGELOG}\"\n{state}",
        scene.kafka_toml()
    );
    scene.write_config("balances.toml", &text)
}

fn send(scene: &Scene, events: &[(String, String)]) {
    let delivered = produce(&scene.bootstrap(), INPUT, events);
    assert_eq!(delivered.len(), events.len(), "every event written");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn at_least_once_state_survives_a_restart() {
    state_survives_a_restart("account-balance", "at-least-once");
}

/// The Python port (`plugins/python/account-balance`, built by
/// `scripts/build-plugins` when componentize-py is installed) keeps its
/// state the same way, here under exactly-once.
#[test]
fn python_account_balance_keeps_its_state_across_a_restart_exactly_once() {
    state_survives_a_restart("account-balance-py", "exactly-once");
}

fn state_survives_a_restart(plugin: &str, delivery: &str) {
    let scene = scene();
    let config = config_of(&scene, plugin, delivery, "");
    let mut ledger = Ledger::new();
    send(&scene, &ledger.events(20, 2_000));
    let mut first = scene.start(&config, "first");
    wait_outputs(&scene, &ledger, &[&first]);
    first.stop();

    // A graceful stop commits everything it processed: the next process
    // starts from exactly the state the commits match.
    send(&scene, &ledger.events(20, 2_000));
    let second = scene.start(&config, "second");
    let outputs = wait_outputs(&scene, &ledger, &[&second]);
    assert_eq!(latest(&outputs), ledger.accounts);
    assert_eq!(outputs.len(), ledger.valid, "no output repeated");
    assert!(second.metric(RESTORES) >= 1.0, "{}", second.describe());
}

#[test]
fn exactly_once_kill_9_mid_stream_keeps_every_balance_exact() {
    let scene = scene();
    let config = config(&scene, "exactly-once", "");
    let mut ledger = Ledger::new();
    send(&scene, &ledger.events(50, 100_000));

    let mut doomed = scene.start(&config, "doomed");
    // Killed as soon as its first outputs are written: mid-stream.
    let mut seen = Reader::uncommitted(&scene.bootstrap(), &[OUTPUT]);
    assert!(seen.wait_count(1, WAIT), "{}", doomed.describe());
    doomed.kill9();

    // What it left: committed outputs (a consistent prefix of each
    // account's history) and, past them, its open transaction's.
    let mut committed = Reader::new(&scene.bootstrap(), &[OUTPUT]);
    committed.settle(Duration::from_secs(2), Duration::from_secs(30));
    seen.settle(Duration::from_secs(2), Duration::from_secs(30));
    let (committed, seen) = (committed.records().to_vec(), seen.records().to_vec());
    distinct(&committed);
    assert!(
        committed.len() < ledger.valid,
        "killed mid-stream: {} of {} outputs were committed",
        committed.len(),
        ledger.valid
    );
    let left_open = seen.len() - committed.len();

    let survivor = scene.start(&config, "survivor");
    let outputs = wait_outputs(&scene, &ledger, &[&survivor]);
    // The state matches the committed offsets exactly: no event applied
    // twice, none lost.
    assert_eq!(latest(&outputs), ledger.accounts);
    assert_eq!(distinct_count(&outputs), ledger.valid);
    // The only repeats are the records of the killed process's open
    // transaction, which its successor aborted (and Kafka hides from
    // `read_committed` readers; tansu 0.6 does not); the survivor itself
    // aborted nothing.
    assert_eq!(outputs.len() - ledger.valid, left_open);
    let metric = |series: &str| survivor.metric(series);
    assert!(metric("sluice_transactions_total{pipeline=\"balances\",outcome=\"committed\"}") > 0.0);
    assert_eq!(
        metric("sluice_transactions_total{pipeline=\"balances\",outcome=\"aborted\"}"),
        0.0
    );
    // The state of whatever the killed process committed came back.
    let restored = metric("sluice_state_restored_keys_total{pipeline=\"balances\"}");
    assert_eq!(restored > 0.0, !committed.is_empty(), "{restored} keys");

    // Dead letters too: each overdraft once, apart from the aborted ones.
    let mut dlq = Reader::new(&scene.bootstrap(), &[DLQ]);
    dlq.read_until(WAIT, |records| {
        distinct_sources(records).len() >= ledger.invalid
    });
    assert_eq!(distinct_sources(dlq.records()).len(), ledger.invalid);
}

/// The source offsets of dead letters, without repeats.
fn distinct_sources(records: &[Record]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .map(|r| {
            let header = |name: &str| r.header(name).unwrap_or_default().to_owned();
            (
                header("sluice.source.partition"),
                header("sluice.source.offset"),
            )
        })
        .collect()
}

#[test]
fn exactly_once_state_moves_with_a_rebalance_between_two_processes() {
    let scene = scene();
    let config = config(&scene, "exactly-once", "");
    let mut ledger = Ledger::new();
    send(&scene, &ledger.events(30, 3_000));
    let mut a = scene.start_with_env(&config, "a", &[("SLUICE_INSTANCE_ID", "a")]);
    a.wait_assigned("balances", 3);
    wait_outputs(&scene, &ledger, &[&a]);

    // A second member takes some partitions, and their state with them.
    let mut b = scene.start_with_env(&config, "b", &[("SLUICE_INSTANCE_ID", "b")]);
    b.wait_status("b to own a partition", |s| s.assigned("balances") > 0);
    a.wait_status("a to own fewer partitions", |s| s.assigned("balances") < 3);
    send(&scene, &ledger.events(30, 3_000));
    wait_outputs(&scene, &ledger, &[&a, &b]);

    // b restored the state of the partitions it took.
    assert!(b.metric(RESTORES) >= 1.0, "{}", b.describe());

    // And back when it leaves.
    let restores_before = a.metric(RESTORES);
    b.stop();
    a.wait_assigned("balances", 3);
    send(&scene, &ledger.events(30, 3_000));
    let outputs = wait_outputs(&scene, &ledger, &[&a]);
    assert_eq!(latest(&outputs), ledger.accounts);
    assert_eq!(outputs.len(), ledger.valid, "no output repeated");
    // a restored the state of the partitions it took back.
    assert!(a.metric(RESTORES) > restores_before, "{}", a.describe());
}

#[test]
fn a_changelog_record_sluice_cannot_read_stops_its_partition_unless_skipped() {
    let scene = scene();
    scene.create_topic(CHANGELOG, 3);
    // A foreign record at offset 0 of the changelog's partition 1.
    let mut producer = TestProducer::new(&scene.bootstrap());
    producer.send_to(CHANGELOG, Some(1), Some(b"no step name"), Some(b"{}"), &[]);
    producer.flush();

    let mut ledger = Ledger::new();
    let events = ledger.events(12, 600);
    let delivered = produce(&scene.bootstrap(), INPUT, &events);
    let partition_of: BTreeMap<&str, i32> = events
        .iter()
        .zip(&delivered)
        .map(|((key, _), d)| (key.as_str(), d.partition))
        .collect();
    let config = config(&scene, "at-least-once", "");
    let mut sluice = scene.start(&config, "stops");
    sluice.wait_assigned("balances", 3);

    // Partitions 0 and 2 run; partition 1 says why it does not.
    let expected: BTreeMap<String, (u64, u64)> = ledger
        .accounts
        .iter()
        .filter(|(account, _)| partition_of.get(account.as_str()) != Some(&1))
        .map(|(a, b)| (a.clone(), *b))
        .collect();
    assert!(expected.len() < ledger.accounts.len(), "{partition_of:?}");
    let mut reader = Reader::new(&scene.bootstrap(), &[OUTPUT]);
    reader.read_until(WAIT, |records| latest(records) == expected);
    reader.settle(Duration::from_secs(2), Duration::from_secs(10));
    assert_eq!(latest(reader.records()), expected, "{}", sluice.describe());
    // The status names the stopped partition and why; /readyz too.
    let status = sluice.wait_status("partition 1 stopped", |s| {
        s.pipeline("balances")
            .is_some_and(|p| p["stopped"].as_array().is_some_and(|l| !l.is_empty()))
    });
    let stopped = &status.pipeline("balances").expect("the pipeline")["stopped"];
    assert_eq!(stopped.as_array().map(Vec::len), Some(1), "{stopped}");
    assert_eq!(stopped[0]["topic"], INPUT);
    assert_eq!(stopped[0]["partition"], 1);
    let why = stopped[0]["why"].as_str().unwrap_or_default();
    for fragment in [
        "the changelog `balances-changelog` has a record Sluice cannot read at partition 1, offset 0",
        "no step name",
        "state.on_corrupt = \"skip\"",
    ] {
        assert!(why.contains(fragment), "no `{fragment}` in {why}");
    }
    let (code, body) = sluice.get("/readyz").expect("/readyz answers");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("partition account-events/1 is stopped"),
        "{body}"
    );

    // The operator says to skip it: the edited pipeline restarts, and
    // partition 1 goes on from where it stood.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap() + "on_corrupt = \"skip\"\n",
    )
    .unwrap();
    let outputs = wait_outputs(&scene, &ledger, &[&sluice]);
    assert_eq!(latest(&outputs), ledger.accounts);
    let status = sluice.status().expect("a status");
    assert_eq!(
        status.pipeline("balances").expect("the pipeline")["stopped"],
        serde_json::json!([])
    );
    sluice.stop();
}

/// A restore of two million keys holds back only its own
/// partition: the poll thread goes on polling, the other partitions'
/// events are processed while it runs, and the member keeps its place in
/// the group. Then the held-back partition goes on from where it was.
#[test]
fn a_large_restore_holds_back_only_its_own_partition() {
    const FILLER: usize = 2_000_000;
    let scene = scene();
    scene.create_topic(CHANGELOG, 3);
    // State of the account-balance step in changelog partition 0 that
    // the plugin never reads, but a restore must read to the end.
    let mut producer = TestProducer::with_settings(
        &scene.bootstrap(),
        &[("linger.ms", "20"), ("batch.num.messages", "10000")],
    );
    for i in 0..FILLER {
        let key = format!("account-balance\0filler-{i}");
        producer.send_to(CHANGELOG, Some(0), Some(key.as_bytes()), Some(b"1"), &[]);
    }
    assert_eq!(producer.flush().len(), FILLER);

    let config = config(&scene, "at-least-once", "max_keys = 2500000\n");
    let mut sluice = scene.start(&config, "restoring");
    let partition_0 = vec![(INPUT.to_owned(), 0)];
    sluice.wait_status("partition 0 restoring", |s| {
        s.restoring("balances") == partition_0 && s.assigned("balances") == 3
    });

    let mut ledger = Ledger::new();
    let events = ledger.events(12, 300);
    let delivered = produce(&scene.bootstrap(), INPUT, &events);
    let held = delivered.iter().filter(|d| d.partition == 0).count() as u64;
    let others = events.len() as u64 - held;
    assert!(held > 0 && others > 0, "{delivered:?}");
    // Every event of partitions 1 and 2 is processed while partition 0's
    // state is still being read, and none of partition 0's.
    let status = sluice.wait_status("the other partitions' events processed", |s| {
        s.events("balances") >= others
    });
    assert_eq!(
        (status.events("balances"), status.restoring("balances")),
        (others, partition_0),
        "{}",
        sluice.describe()
    );
    assert_eq!(status.revocations("balances"), 0, "{}", sluice.describe());

    // Once restored, partition 0 goes on from its first event, in order.
    sluice.wait_status("partition 0 restored", |s| {
        s.restoring("balances").is_empty()
    });
    let outputs = wait_outputs(&scene, &ledger, &[&sluice]);
    assert_eq!(latest(&outputs), ledger.accounts);
    assert_eq!(outputs.len(), ledger.valid, "no output repeated");
    let status = sluice.status().expect("a status");
    assert_eq!(status.events("balances"), events.len() as u64);
    assert_eq!(status.revocations("balances"), 0, "{}", sluice.describe());
    sluice.stop();
}
