use super::*;

fn seeded(entries: &[(&str, &str)]) -> PluginState {
    let mut state = PluginState::journaled(StateLimits::default());
    state.restore(
        0,
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    state
}

fn set(txn: &mut Transaction, key: &str, value: &str) {
    txn.set(key.into(), value.into()).unwrap();
}

fn strings(keys: Vec<Vec<u8>>) -> Vec<String> {
    keys.into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect()
}

fn committed(state: &PluginState, partition: i32) -> Vec<(String, String)> {
    state
        .partitions()
        .filter(|(p, _)| *p == partition)
        .flat_map(|(_, entries)| {
            entries
                .map(|(k, v)| {
                    (
                        String::from_utf8(k.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn reads_see_the_calls_own_writes_and_commit_applies_them() {
    let mut state = seeded(&[("a", "1"), ("b", "2")]);
    let mut txn = state.begin(0);
    set(&mut txn, "a", "10");
    set(&mut txn, "c", "3");
    assert!(txn.delete(b"b"));
    assert!(!txn.delete(b"nope"));
    assert_eq!(txn.get(b"a"), Some(&b"10"[..]));
    assert_eq!(txn.get(b"b"), None);
    assert!(txn.exists(b"c") && !txn.exists(b"b"));
    // Committed state is untouched until the call returns.
    assert_eq!(state.get(0, b"a"), None, "the scope is in the call");
    state.commit(txn);
    assert_eq!(
        state.take_journal(),
        vec![
            (0, b"a".to_vec(), Some(b"10".to_vec())),
            (0, b"b".to_vec(), None),
            (0, b"c".to_vec(), Some(b"3".to_vec())),
        ]
    );
    assert_eq!(state.take_journal(), [], "taken");
    assert_eq!(
        committed(&state, 0),
        [("a".into(), "10".into()), ("c".into(), "3".into())]
    );
}

#[test]
fn the_journal_keeps_the_latest_change_of_each_key_until_taken_or_dropped() {
    let mut state = PluginState::journaled(StateLimits::default());
    for (partition, value) in [(0, "1"), (1, "x"), (0, "2")] {
        let mut txn = state.begin(partition);
        set(&mut txn, "k", value);
        state.commit(txn);
    }
    let mut txn = state.begin(0);
    set(&mut txn, "gone", "soon");
    state.abort(txn);
    assert_eq!(
        state.take_journal(),
        vec![
            (0, b"k".to_vec(), Some(b"2".to_vec())),
            (1, b"k".to_vec(), Some(b"x".to_vec())),
        ]
    );
    let mut txn = state.begin(1);
    set(&mut txn, "k", "y");
    state.commit(txn);
    state.drop_partition(1);
    assert_eq!(state.take_journal(), [], "a dropped partition owes nothing");
    assert_eq!(PluginState::default().take_journal(), [], "not journaled");
}

#[test]
fn abort_leaves_the_state_as_before_the_call() {
    let mut state = seeded(&[("a", "1")]);
    let mut txn = state.begin(0);
    set(&mut txn, "a", "2");
    set(&mut txn, "b", "2");
    txn.delete_prefix(b"");
    state.abort(txn);
    assert_eq!(committed(&state, 0), [("a".into(), "1".into())]);
}

#[test]
fn a_key_set_and_deleted_in_one_call_writes_nothing() {
    let mut state = PluginState::journaled(StateLimits::default());
    let mut txn = state.begin(0);
    set(&mut txn, "tmp", "x");
    assert!(txn.delete(b"tmp"));
    state.commit(txn);
    assert_eq!(state.take_journal(), []);
    assert_eq!(state.partitions().count(), 0);
}

#[test]
fn partitions_are_separate_and_can_be_dropped() {
    let mut state = seeded(&[("a", "p0")]);
    let mut txn = state.begin(1);
    assert_eq!(txn.get(b"a"), None);
    set(&mut txn, "a", "p1");
    state.commit(txn);
    assert_eq!(state.get(0, b"a"), Some(&b"p0"[..]));
    assert_eq!(state.get(1, b"a"), Some(&b"p1"[..]));
    state.drop_partition(0);
    assert_eq!(state.get(0, b"a"), None);
    assert_eq!(state.partitions().map(|(p, _)| p).collect::<Vec<_>>(), [1]);
}

#[test]
fn list_keys_pages_by_prefix_and_cursor_over_both_layers() {
    let mut state = seeded(&[
        ("acct/1", "x"),
        ("acct/3", "x"),
        ("acct/5", "x"),
        ("b", "x"),
        ("acc", "x"),
    ]);
    let mut txn = state.begin(0);
    set(&mut txn, "acct/2", "y");
    set(&mut txn, "acct/4", "y");
    txn.delete(b"acct/3");
    set(&mut txn, "acct/5", "overwritten");

    let page = |cursor: Option<&str>, limit| {
        strings(txn.list_keys(b"acct/", cursor.map(str::as_bytes), limit))
    };
    assert_eq!(page(None, 2), ["acct/1", "acct/2"]);
    assert_eq!(page(Some("acct/2"), 2), ["acct/4", "acct/5"]);
    assert_eq!(page(Some("acct/5"), 2), Vec::<String>::new());
    // A cursor before the prefix starts at the prefix; one after it
    // finds nothing.
    assert_eq!(
        page(Some("a"), 10),
        ["acct/1", "acct/2", "acct/4", "acct/5"]
    );
    assert_eq!(page(Some("z"), 10), Vec::<String>::new());
    assert_eq!(page(None, 0), Vec::<String>::new());
    assert_eq!(
        strings(txn.list_keys(b"", None, 100)),
        ["acc", "acct/1", "acct/2", "acct/4", "acct/5", "b"]
    );
}

#[test]
fn delete_prefix_counts_what_had_a_value_in_this_call() {
    let mut state = seeded(&[("u/1", "x"), ("u/2", "x"), ("v", "x")]);
    let mut txn = state.begin(0);
    set(&mut txn, "u/3", "x");
    txn.delete(b"u/1");
    assert_eq!(txn.delete_prefix(b"u/"), 2);
    assert_eq!(txn.delete_prefix(b"u/"), 0);
    set(&mut txn, "u/9", "back");
    state.commit(txn);
    assert_eq!(
        committed(&state, 0),
        [("u/9".into(), "back".into()), ("v".into(), "x".into())]
    );
}

#[test]
fn writes_over_a_limit_are_refused_and_change_nothing() {
    let limits = StateLimits {
        max_key_bytes: 4,
        max_value_bytes: 8,
        max_keys: 2,
        max_bytes: 16,
    };
    let mut state = PluginState::new(limits);
    let mut txn = state.begin(7);
    assert_eq!(
        txn.set(b"12345".to_vec(), vec![]),
        Err(StateLimitError::KeyTooLarge { size: 5, max: 4 })
    );
    assert_eq!(
        txn.set(b"k".to_vec(), vec![0; 9]),
        Err(StateLimitError::ValueTooLarge { size: 9, max: 8 })
    );
    set(&mut txn, "a", "1234567"); // 8 bytes
    set(&mut txn, "b", "1234567"); // 16 bytes
    assert_eq!(
        txn.set(b"c".to_vec(), vec![]),
        Err(StateLimitError::TooManyKeys {
            partition: 7,
            max: 2
        })
    );
    assert_eq!(
        txn.set(b"a".to_vec(), b"12345678".to_vec()),
        Err(StateLimitError::TooManyBytes {
            partition: 7,
            size: 17,
            max: 16
        })
    );
    // Replacing a value within the limits, and room made by a delete.
    set(&mut txn, "a", "x");
    txn.delete(b"b");
    set(&mut txn, "c", "1234567");
    state.commit(txn);
    // The counts carry over to the next call: a and c, 10 bytes.
    let mut txn = state.begin(7);
    assert!(matches!(
        txn.set(b"d".to_vec(), vec![]),
        Err(StateLimitError::TooManyKeys { .. })
    ));
    set(&mut txn, "a", "1234567");
    assert!(matches!(
        txn.set(b"a".to_vec(), b"12345678".to_vec()),
        Err(StateLimitError::TooManyBytes { size: 17, .. })
    ));
}
