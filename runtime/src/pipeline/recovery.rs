//! Recovery off the poll thread: the state of partitions just assigned (or
//! rewound by an abort) read from the changelog, and the group's committed
//! offsets that exactly-once needs, on a thread of its own. Either can take
//! seconds (a changelog of a million keys, a coordinator that is slow to
//! answer); the poll thread meanwhile keeps polling, so the group keeps its
//! member and the other partitions keep flowing.
//!
//! The poll thread pauses the partitions concerned, sends a [`Job`], and
//! applies the [`Recovered`] answers when they arrive on the control
//! channel (see `poller::restore`); this module knows only the function
//! that sends them. Jobs run one at a time, in the order sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::tracker::Tp;
use crate::changelog::{RestoreError, Restored, Restorer};
use crate::config::{KafkaConfig, PipelineConfig};

/// How long the group coordinator may take to answer about committed
/// offsets.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Jobs waiting for the thread: a rebalance or an abort sends one each,
/// and the poll thread waits for room only if this many are queued.
const JOBS: usize = 16;
/// How long to wait before asking for the committed offsets again.
const LOOKUP_RETRY: Duration = Duration::from_secs(1);

/// What to recover.
#[derive(Debug)]
pub(crate) struct Job {
    /// Names the answer, so the poll thread can tell which job it answers.
    pub epoch: u64,
    /// Partition numbers whose state to restore (none without state).
    pub numbers: Vec<i32>,
    /// Input partitions whose committed offsets to look up (exactly-once:
    /// to leave uncommitted work out of the state, and to rewind to).
    pub committed: Vec<Tp>,
}

/// The answer to a [`Job`].
#[derive(Debug)]
pub(crate) struct Recovered {
    pub epoch: u64,
    /// Each partition number's state, or why it could not be restored.
    pub states: BTreeMap<i32, Result<Restored, RestoreError>>,
    /// The committed offsets asked for: `None` where nothing is committed
    /// (or the lookup failed: see `lookup_error`).
    pub committed: FxHashMap<Tp, Option<i64>>,
    /// Why the committed offsets could not be read, if they could not.
    pub lookup_error: Option<String>,
    /// Keys restored in all, and how long the job took.
    pub keys: usize,
    pub took: Duration,
}

/// The recovery thread of one pipeline.
pub(crate) struct Recovery {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// Where answers go (the poll thread's control channel).
pub(crate) type Answer = Box<dyn Fn(Recovered) + Send>;

/// What the thread owns.
struct Worker {
    pipeline: String,
    restorer: Option<Restorer>,
    lookup: Option<BaseConsumer>,
    answer: Answer,
    stop: Arc<AtomicBool>,
}

impl Recovery {
    /// The recovery thread of `pipeline`, or `None` when it needs none
    /// (no state, at-least-once). Answers go to `answer`.
    pub fn start(
        kafka: &KafkaConfig,
        brokers: &str,
        pipeline: &PipelineConfig,
        keeps_state: bool,
        exactly_once: bool,
        answer: Answer,
    ) -> Result<Option<Recovery>, RecoveryError> {
        if !keeps_state && !exactly_once {
            return Ok(None);
        }
        let restorer = keeps_state
            .then(|| Restorer::new(kafka, brokers, pipeline))
            .transpose()
            .map_err(|e| RecoveryError::Client("changelog reader", e))?;
        let lookup = if exactly_once {
            let mut client = crate::kafka::consumer_config(kafka, brokers, &pipeline.group_id);
            // A `read_committed` lookup waits out pending transactional
            // offset commits (KIP-447): what it returns is stable.
            client
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
            Some(
                client
                    .create()
                    .map_err(|e| RecoveryError::Client("offset reader", e))?,
            )
        } else {
            None
        };
        let (jobs, inbox) = mpsc::sync_channel(JOBS);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            pipeline: pipeline.name.clone(),
            restorer,
            lookup,
            answer,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-{}-recover", pipeline.name))
            .spawn(move || worker.run(inbox))
            .map_err(RecoveryError::Thread)?;
        Ok(Some(Recovery {
            jobs: Some(jobs),
            thread: Some(thread),
            stop,
        }))
    }

    /// Queues a job; waits only while [`JOBS`] are queued.
    pub fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // The thread only goes away with `stop`.
            let _ = jobs.send(job);
        }
    }

    /// Ends the job under way and takes no more; the thread ends soon
    /// after (see [`Recovery::is_finished`]).
    pub fn cancel(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
    }

    /// Whether the thread has ended. It may be waiting for room on the
    /// control channel to send an answer: whoever waits for it keeps
    /// draining that channel.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Ends the job under way and the thread, and waits for it.
    pub fn stop(&mut self) {
        self.cancel();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the recovery thread panicked");
        }
    }
}

impl Drop for Recovery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why the recovery thread could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecoveryError {
    #[error("cannot create the {0}: {1}")]
    Client(&'static str, KafkaError),
    #[error("cannot start the recovery thread: {0}")]
    Thread(std::io::Error),
}

impl Worker {
    fn run(self, inbox: Receiver<Job>) {
        while let Ok(job) = inbox.recv() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            self.recover(job);
        }
    }

    /// Answers `job`: one answer per partition of state, or one for the
    /// committed offsets alone.
    fn recover(&self, job: Job) {
        let started = Instant::now();
        // Without the committed offsets neither the state (what is
        // committed of it) nor the rewind is known: ask until they come,
        // with the partitions paused meanwhile.
        let (committed, lookup_error) = loop {
            match self.committed(&job.committed) {
                Ok(committed) => break (committed, None),
                Err(e) if self.stopping(LOOKUP_RETRY) => {
                    break (FxHashMap::default(), Some(e.to_string()));
                }
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot read the committed offsets; asking again");
                }
            }
        };
        if let Some(error) = &lookup_error {
            let states = job
                .numbers
                .iter()
                .map(|n| {
                    let e = RestoreError::Read {
                        topic: "the group's committed offsets".to_owned(),
                        error: error.clone(),
                    };
                    (*n, Err(e))
                })
                .collect();
            return self.answer(Recovered {
                epoch: job.epoch,
                states,
                committed,
                lookup_error,
                keys: 0,
                took: started.elapsed(),
            });
        }
        let Some(restorer) = self.restorer.as_ref().filter(|_| !job.numbers.is_empty()) else {
            self.answer(Recovered {
                epoch: job.epoch,
                states: BTreeMap::new(),
                committed,
                lookup_error: None,
                keys: 0,
                took: started.elapsed(),
            });
            return;
        };
        let lookup = |topic: &str, partition: i32| {
            committed
                .iter()
                .find(|(tp, _)| tp.partition == partition && &*tp.topic == topic)
                .and_then(|(_, offset)| *offset)
        };
        let filter = self
            .lookup
            .is_some()
            .then_some(&lookup as &dyn Fn(&str, i32) -> Option<i64>);
        let stop = || self.stop.load(Ordering::Relaxed);
        // One answer per partition, as soon as it is read: the others go
        // on while a large one is still being read.
        restorer.restore_each(&job.numbers, filter, &stop, &mut |number, state| {
            let keys = state
                .as_ref()
                .map_or(0, |s| s.iter().map(BTreeMap::len).sum());
            self.answer(Recovered {
                epoch: job.epoch,
                states: BTreeMap::from([(number, state)]),
                committed: committed
                    .iter()
                    .filter(|(tp, _)| tp.partition == number)
                    .map(|(tp, offset)| (tp.clone(), *offset))
                    .collect(),
                lookup_error: None,
                keys,
                took: started.elapsed(),
            });
        });
    }

    fn answer(&self, recovered: Recovered) {
        (self.answer)(recovered);
    }

    /// Waits up to `wait`, or less if the pipeline stops; whether it stops.
    fn stopping(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop.load(Ordering::Relaxed)
    }

    /// The group's committed offsets of `tps`; `None` where nothing is
    /// committed.
    fn committed(&self, tps: &[Tp]) -> Result<FxHashMap<Tp, Option<i64>>, KafkaError> {
        let Some(lookup) = &self.lookup else {
            return Ok(FxHashMap::default());
        };
        if tps.is_empty() {
            return Ok(FxHashMap::default());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let got = lookup.committed_offsets(tpl, LOOKUP_TIMEOUT)?;
        Ok(tps
            .iter()
            .map(|tp| {
                let offset =
                    got.find_partition(&tp.topic, tp.partition)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                (tp.clone(), offset)
            })
            .collect())
    }
}
