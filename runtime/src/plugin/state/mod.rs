//! The keyed state of one plugin as one runner keeps it (a pipeline step
//! of one worker, or `sluice exec`'s plugin): a scope per input partition,
//! each an ordered map of byte-string keys to byte-string values, and the
//! per-call [`Transaction`] the `state` interface reads and writes through.
//! It owns the state limits and their defaults.
//!
//! A call works on a transaction over its partition's scope: reads see the
//! call's own writes; [`PluginState::commit`] applies them when the call
//! returns, [`PluginState::abort`] drops them when it traps. The scope is
//! moved into the transaction for the length of the call (not borrowed), so
//! the store of a wasmtime instance can own it.
//!
//! What a durable store needs on top is here as well: [`PluginState::restore`]
//! and [`PluginState::drop_partition`] for assignment and revocation, and
//! the journal of committed changes a changelog is written from
//! ([`PluginState::journaled`], [`PluginState::take_journal`]).

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::Bound;

/// Default [`StateLimits::max_key_bytes`]: 4 KiB.
pub const DEFAULT_MAX_KEY_BYTES: usize = 4 << 10;
/// Default [`StateLimits::max_value_bytes`]: 1 MiB, the default output cap.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Default [`StateLimits::max_keys`]: a million keys per partition.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;
/// Default [`StateLimits::max_bytes`]: 256 MiB per partition.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// Bounds on a plugin's state. A write beyond one traps the call with a
/// [`StateLimitError`]; the event that made it is dead-lettered as
/// `state-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys of one partition's scope.
    pub max_keys: usize,
    /// Most bytes (keys + values) of one partition's scope.
    pub max_bytes: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_keys: DEFAULT_MAX_KEYS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// A write the limits refuse. Returned to wasmtime as the error of a host
/// call, it traps the call; the trap classification finds it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateLimitError {
    #[error("a state key of {size} bytes is over the limit of {max} bytes")]
    KeyTooLarge { size: usize, max: usize },
    #[error("a state value of {size} bytes is over the limit of {max} bytes")]
    ValueTooLarge { size: usize, max: usize },
    #[error("partition {partition}'s state would hold more than {max} keys")]
    TooManyKeys { partition: i32, max: usize },
    #[error("partition {partition}'s state would hold {size} bytes, over the limit of {max} bytes")]
    TooManyBytes {
        partition: i32,
        size: usize,
        max: usize,
    },
}

/// One partition's committed state.
#[derive(Debug, Default, Clone)]
struct Scope {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys + values, in bytes.
    bytes: usize,
}

/// Changes of committed calls not taken yet: the latest value of each
/// key written, per partition (`None`: removed).
type Journal = BTreeMap<(i32, Vec<u8>), Option<Vec<u8>>>;

/// What [`PluginState::take_journal`] hands out: per partition, in key
/// order, the latest value of each key written (`None`: removed).
pub type JournalEntry = (i32, Vec<u8>, Option<Vec<u8>>);

/// Every partition's state of one plugin.
#[derive(Debug, Default)]
pub struct PluginState {
    limits: StateLimits,
    scopes: BTreeMap<i32, Scope>,
    /// Kept only when the state is durable: what the changelog is owed.
    journal: Option<Journal>,
}

impl PluginState {
    /// Empty state under `limits`.
    pub fn new(limits: StateLimits) -> Self {
        PluginState {
            limits,
            scopes: BTreeMap::new(),
            journal: None,
        }
    }

    /// Empty state under `limits` that keeps a journal of committed
    /// changes for [`PluginState::take_journal`] (a pipeline's, which
    /// writes them to its changelog).
    pub fn journaled(limits: StateLimits) -> Self {
        PluginState {
            journal: Some(Journal::new()),
            ..PluginState::new(limits)
        }
    }

    /// The changes committed since the last call, one per key: a key set
    /// twice since then is written once, with its latest value.
    pub fn take_journal(&mut self) -> Vec<JournalEntry> {
        match &mut self.journal {
            Some(journal) if !journal.is_empty() => std::mem::take(journal)
                .into_iter()
                .map(|((partition, key), value)| (partition, key, value))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Moves `other`'s committed state and journal into this one (a hot
    /// swap: the new instance takes over the old one's state).
    pub fn adopt(&mut self, other: &mut PluginState) {
        self.scopes = std::mem::take(&mut other.scopes);
        if let (Some(mine), Some(theirs)) = (&mut self.journal, &mut other.journal) {
            mine.append(theirs);
        }
    }

    fn forget_journal(&mut self, partition: i32) {
        if let Some(journal) = &mut self.journal {
            journal.retain(|(p, _), _| *p != partition);
        }
    }

    /// Replaces `partition`'s state with `entries` (a restore or a seed:
    /// taken as they are, not checked against the limits).
    pub fn restore(
        &mut self,
        partition: i32,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) {
        let entries: BTreeMap<Vec<u8>, Vec<u8>> = entries.into_iter().collect();
        let bytes = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.scopes.insert(partition, Scope { entries, bytes });
        self.forget_journal(partition);
    }

    /// Forgets `partition`'s state (its partition was revoked).
    pub fn drop_partition(&mut self, partition: i32) {
        self.scopes.remove(&partition);
        self.forget_journal(partition);
    }

    /// The partitions that have state, in order, each with its entries in
    /// key order.
    pub fn partitions(&self) -> impl Iterator<Item = (i32, Entries<'_>)> {
        self.scopes
            .iter()
            .filter(|(_, scope)| !scope.entries.is_empty())
            .map(|(partition, scope)| (*partition, Entries(scope.entries.iter())))
    }

    /// The committed value of `key` in `partition`.
    pub fn get(&self, partition: i32, key: &[u8]) -> Option<&[u8]> {
        self.scopes
            .get(&partition)
            .and_then(|scope| scope.entries.get(key))
            .map(Vec::as_slice)
    }

    /// Starts a call's transaction over `partition`'s state, which stays
    /// in the transaction until [`commit`](Self::commit) or
    /// [`abort`](Self::abort) hands it back.
    pub fn begin(&mut self, partition: i32) -> Transaction {
        let base = self.scopes.remove(&partition).unwrap_or_default();
        Transaction {
            partition,
            keys: base.entries.len(),
            bytes: base.bytes,
            base,
            overlay: BTreeMap::new(),
            limits: self.limits,
        }
    }

    /// Applies the call's writes (and journals them, when journaled).
    pub fn commit(&mut self, transaction: Transaction) {
        let partition = transaction.partition;
        match self.journal.take() {
            Some(mut journal) => {
                self.apply(transaction, |key, value| {
                    journal.insert((partition, key.to_vec()), value.map(<[u8]>::to_vec));
                });
                self.journal = Some(journal);
            }
            None => self.apply(transaction, |_, _| {}),
        }
    }

    /// Drops the call's writes: the partition's state is as before it.
    pub fn abort(&mut self, transaction: Transaction) {
        self.scopes.insert(transaction.partition, transaction.base);
    }

    fn apply(&mut self, transaction: Transaction, mut wrote: impl FnMut(&[u8], Option<&[u8]>)) {
        let Transaction {
            partition,
            mut base,
            overlay,
            bytes,
            ..
        } = transaction;
        for (key, value) in overlay {
            wrote(&key, value.as_deref());
            match value {
                Some(value) => base.entries.insert(key, value),
                None => base.entries.remove(&key),
            };
        }
        base.bytes = bytes;
        self.scopes.insert(partition, base);
    }
}

/// A partition's entries in key order.
pub struct Entries<'a>(btree_map::Iter<'a, Vec<u8>, Vec<u8>>);

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }
}

/// One call's view of its partition's state: the committed scope under the
/// call's own writes.
#[derive(Debug)]
pub struct Transaction {
    partition: i32,
    base: Scope,
    /// The call's writes: a value, or `None` for a key removed that the
    /// committed scope has.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys once the overlay is applied.
    keys: usize,
    /// Bytes once the overlay is applied.
    bytes: usize,
    limits: StateLimits,
}

impl Transaction {
    /// The partition whose state this is.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The value of `key`, the call's own writes first.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match self.overlay.get(key) {
            Some(value) => value.as_deref(),
            None => self.base.entries.get(key).map(Vec::as_slice),
        }
    }

    pub fn exists(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, unless that breaks a limit.
    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateLimitError> {
        let limits = &self.limits;
        if key.len() > limits.max_key_bytes {
            return Err(StateLimitError::KeyTooLarge {
                size: key.len(),
                max: limits.max_key_bytes,
            });
        }
        if value.len() > limits.max_value_bytes {
            return Err(StateLimitError::ValueTooLarge {
                size: value.len(),
                max: limits.max_value_bytes,
            });
        }
        let old = self.get(&key).map(|v| key.len() + v.len());
        let keys = self.keys + usize::from(old.is_none());
        if keys > limits.max_keys {
            return Err(StateLimitError::TooManyKeys {
                partition: self.partition,
                max: limits.max_keys,
            });
        }
        let bytes = self.bytes - old.unwrap_or(0) + key.len() + value.len();
        if bytes > limits.max_bytes {
            return Err(StateLimitError::TooManyBytes {
                partition: self.partition,
                size: bytes,
                max: limits.max_bytes,
            });
        }
        self.keys = keys;
        self.bytes = bytes;
        self.overlay.insert(key, Some(value));
        Ok(())
    }

    /// Removes `key`; whether it had a value.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let Some(old) = self.get(key).map(<[u8]>::len) else {
            return false;
        };
        self.keys -= 1;
        self.bytes -= key.len() + old;
        if self.base.entries.contains_key(key) {
            self.overlay.insert(key.to_vec(), None);
        } else {
            // Written by this call only: nothing to remove at commit.
            self.overlay.remove(key);
        }
        true
    }

    /// Up to `limit` keys starting with `prefix`, in byte order, after
    /// `cursor` (exclusive) when given.
    pub fn list_keys(&self, prefix: &[u8], cursor: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
        let start = match cursor {
            Some(cursor) if cursor >= prefix => Bound::Excluded(cursor),
            _ => Bound::Included(prefix),
        };
        let range = (start, Bound::Unbounded);
        let mut base = self
            .base
            .entries
            .range::<[u8], _>(range)
            .map(|(k, v)| (k, Some(v)))
            .peekable();
        let mut overlay = self
            .overlay
            .range::<[u8], _>(range)
            .map(|(k, v)| (k, v.as_ref()))
            .peekable();
        let mut keys = Vec::new();
        while keys.len() < limit {
            // Merge the two in key order; on a tie the call's write wins.
            let next = match (base.peek(), overlay.peek()) {
                (None, None) => break,
                (Some(_), None) => base.next(),
                (None, Some(_)) => overlay.next(),
                (Some((b, _)), Some((o, _))) => {
                    if b < o {
                        base.next()
                    } else {
                        if b == o {
                            base.next();
                        }
                        overlay.next()
                    }
                }
            };
            let Some((key, value)) = next else { break };
            // The keys with a prefix are contiguous: the first without it
            // ends them.
            if !key.starts_with(prefix) {
                break;
            }
            if value.is_some() {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Removes every key that starts with `prefix`; how many there were.
    pub fn delete_prefix(&mut self, prefix: &[u8]) -> u64 {
        let keys = self.list_keys(prefix, None, usize::MAX);
        for key in &keys {
            self.delete(key);
        }
        keys.len() as u64
    }
}

#[cfg(test)]
mod tests;
