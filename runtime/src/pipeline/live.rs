//! Which batches workers may still process: the current assignment
//! generation of each partition. A batch of a revoked partition, or of a
//! generation a reset ended, is skipped when its turn comes instead of
//! processed: its state changes and records would belong to work that is
//! no longer this member's (at-least-once), or to an aborted transaction
//! (exactly-once).

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use super::tracker::Tp;

/// The live generation of every partition a pipeline owns. Workers read it
/// once per batch; the poll thread changes it on rebalances and resets.
#[derive(Debug, Default)]
pub(crate) struct Live(Mutex<FxHashMap<Tp, u64>>);

impl Live {
    /// Batches of `tp`'s `generation` may run.
    pub fn set(&self, tp: &Tp, generation: u64) {
        self.0.lock().insert(tp.clone(), generation);
    }

    /// No batch of `tp` may run.
    pub fn remove(&self, tp: &Tp) {
        self.0.lock().remove(tp);
    }

    /// No batch may run.
    pub fn clear(&self) {
        self.0.lock().clear();
    }

    /// Whether a batch of `tp`'s `generation` may run.
    pub fn is_live(&self, tp: &Tp, generation: u64) -> bool {
        self.0.lock().get(tp) == Some(&generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_generation_of_an_owned_partition_runs() {
        let live = Live::default();
        let tp = Tp {
            topic: "t".into(),
            partition: 0,
        };
        assert!(!live.is_live(&tp, 1));
        live.set(&tp, 1);
        assert!(live.is_live(&tp, 1));
        live.set(&tp, 2);
        assert!(!live.is_live(&tp, 1), "an older generation");
        live.remove(&tp);
        assert!(!live.is_live(&tp, 2));
        live.set(&tp, 3);
        live.clear();
        assert!(!live.is_live(&tp, 3));
    }
}
