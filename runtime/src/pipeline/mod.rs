//! A running pipeline: a consumer-group member that reads its input topics,
//! batches events per partition, fans the batches out to worker threads
//! (one chain of plugin instances each), and stores offsets only when all
//! that an event led to is safely written.
//!
//! Threads and what they own:
//! - the *poll thread* ([`poller`]) owns the consumer and the
//!   [`tracker::Tracker`]; it never blocks on anything but the consumer's
//!   poll, the control channel or a call to the transactional producer,
//!   so news of done batches and rebalances are always served;
//! - the *recovery thread* ([`recovery`], stateful or exactly-once
//!   pipelines) restores partitions' state from the changelog and reads
//!   the group's committed offsets, while the partitions concerned wait,
//!   paused;
//! - each *worker* ([`worker`]) owns a [`chain::Chain`] and processes the
//!   batches of the partitions hashed to it, in order;
//! - the producer's own thread ([`sink`]) serves delivery reports: each
//!   releases its record's [`batch::Ticket`], and the last one of a batch
//!   tells the poll thread through the [`control`] channel; failed records
//!   go there too.
//!
//! The other files: [`dispatch`] (batches to workers), [`pressure`]
//! (holding off and pausing), [`group`] (rebalances and the assignment),
//! [`live`] (which batches may still run), [`refused`] (exactly-once:
//! outputs the broker refused). Every queue is bounded.
//!
//! A stateful chain's state is restored from its changelog
//! ([`crate::changelog`]) by the recovery thread when a partition is
//! assigned and handed to the partition's worker ahead of its first batch;
//! workers write each batch's state changes under the batch's tickets.
//! Under exactly-once the sink's producer is transactional and the poll
//! thread commits (or aborts and rewinds) the transaction.

mod batch;
mod chain;
mod control;
mod dispatch;
mod group;
mod live;
mod poller;
mod pressure;
mod recovery;
mod refused;
pub(crate) mod rules;
mod sink;
mod tracker;
mod worker;

use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Delivery, KafkaConfig, PipelineConfig, display_problems};
use crate::kafka;
use crate::metrics::Replacement;
use crate::plugin::{
    CompiledPlugin, PluginEngine, PluginError, PluginRunner, PluginSet, PluginState, set,
};
use crate::status::PipelineStatus;
use control::ControlTx;
use dispatch::Dispatcher;
use group::GroupContext;
use live::Live;
use poller::{Poller, PollerParts};
use recovery::{Recovery, RecoveryError};
use refused::RefusedOutputs;
use sink::Sink;
use worker::{WorkerMsg, WorkerShared};

// What `sluice dlq redrive` runs a dead letter through: a worker's chain
// and its rules, outside a running pipeline.
pub(crate) use chain::Chain;
pub(crate) use rules::{Processed, dead_letter, origin, output_record, process, sleep};

/// Compiles into `plugins` what the chains of `pipelines` (pipelines of
/// `config`) need and it lacks. Plugin files that do not exist are reported
/// first, all of them, each with its place in the config file; then every
/// plugin that does not compile or does not implement the world.
pub fn load_plugins<'a>(
    engine: &PluginEngine,
    config: &Config,
    pipelines: impl IntoIterator<Item = &'a PipelineConfig>,
    plugins: &mut PluginSet,
) -> anyhow::Result<()> {
    let missing = config.missing_plugins();
    if !missing.is_empty() {
        anyhow::bail!("{}", display_problems(&config.path, &missing));
    }
    let steps = pipelines.into_iter().flat_map(PipelineConfig::step_plugins);
    set::load(engine, plugins, steps)?;
    Ok(())
}

/// The plugins of `pipeline`'s chain, in order, out of `plugins`.
pub fn chain_plugins(
    plugins: &PluginSet,
    pipeline: &PipelineConfig,
) -> Result<Vec<Arc<CompiledPlugin>>, set::PluginSetError> {
    set::chain(plugins, pipeline.step_plugins())
}

/// Batches a worker may have queued before the poll thread holds off.
const WORKER_INBOX: usize = 8;
/// News of done batches and failed records waiting for the poll thread.
const CONTROL_CAPACITY: usize = 1 << 16;
/// How long the transactional producer may take to register (it also
/// aborts what a previous process with its transactional id left open).
const TRANSACTIONS_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a pipeline could not start or change.
#[derive(Debug, thiserror::Error)]
#[error("pipeline `{pipeline}`: {why}")]
pub struct PipelineError {
    pub pipeline: String,
    pub why: Box<Why>,
}

/// What went wrong, in a [`PipelineError`].
#[derive(Debug, thiserror::Error)]
pub enum Why {
    #[error(transparent)]
    Plugin(PluginError),
    #[error("cannot create the {0}: {1}")]
    Client(&'static str, KafkaError),
    #[error("cannot subscribe to {0:?}: {1}")]
    Subscribe(Vec<String>, KafkaError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("it is stopping")]
    Stopping,
    #[error("its poll thread panicked")]
    Panicked,
    #[error(
        "the new version of plugin `{0}` keeps state, which the pipeline was not started \
         with: restart Sluice to start its durable state"
    )]
    StateNeedsRestart(String),
    #[error("cannot start the transactional producer: {0}")]
    Transactions(KafkaError),
}

impl PipelineError {
    fn new(pipeline: &str, why: Why) -> Self {
        PipelineError {
            pipeline: pipeline.to_owned(),
            why: Box::new(why),
        }
    }
}

/// New plugin instances for every worker of a pipeline, ready to swap in.
pub struct PreparedSwap {
    chains: Vec<Chain>,
}

/// A pipeline whose plugin instances are started (every `init` has run)
/// and which has not touched Kafka yet: [`PreparedPipeline::start`] joins
/// the group. What a reload builds before it stops anything.
pub struct PreparedPipeline {
    config: PipelineConfig,
    chains: Vec<Chain>,
    keeps_state: bool,
}

/// A pipeline started by [`PreparedPipeline::start`]; stop it with
/// [`Pipeline::stop`] to drain and commit.
pub struct Pipeline {
    config: PipelineConfig,
    status: Arc<PipelineStatus>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
    workers: Vec<SyncSender<WorkerMsg>>,
    keeps_state: bool,
}

impl Pipeline {
    /// Starts one instance of every step per worker (running `init`), so
    /// plugin problems are reported before anything else happens.
    /// `plugins` are the compiled steps, in chain order.
    pub fn prepare(
        config: &PipelineConfig,
        plugins: &[Arc<CompiledPlugin>],
    ) -> Result<PreparedPipeline, PipelineError> {
        Ok(PreparedPipeline {
            chains: build_chains(config, plugins, config.workers.max(1))?,
            config: config.clone(),
            keeps_state: plugins.iter().any(|p| p.keeps_state()),
        })
    }

    /// [`Pipeline::prepare`], then [`PreparedPipeline::start`].
    pub fn start(
        config: &PipelineConfig,
        kafka: &KafkaConfig,
        brokers: &str,
        plugins: &[Arc<CompiledPlugin>],
    ) -> Result<Pipeline, PipelineError> {
        Pipeline::prepare(config, plugins)?.start(kafka, brokers)
    }

    /// The configuration it runs.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Its live state: plugin versions, assigned partitions.
    pub fn status(&self) -> &Arc<PipelineStatus> {
        &self.status
    }

    /// Starts fresh instances of `plugins` (running `init`) for every
    /// worker, off the hot path. Nothing changes until [`Pipeline::swap`].
    pub fn prepare_swap(
        &self,
        plugins: &[Arc<CompiledPlugin>],
    ) -> Result<PreparedSwap, PipelineError> {
        if !self.keeps_state
            && let Some(plugin) = plugins.iter().find(|p| p.keeps_state())
        {
            return Err(PipelineError::new(
                &self.config.name,
                Why::StateNeedsRestart(plugin.name().to_string()),
            ));
        }
        Ok(PreparedSwap {
            chains: build_chains(&self.config, plugins, self.workers.len())?,
        })
    }

    /// Hands each worker its new instances; each switches between two
    /// batches, so every partition (owned by one worker) switches at one
    /// point in its stream.
    pub fn swap(&self, prepared: PreparedSwap) -> Result<(), PipelineError> {
        if let Some(chain) = prepared.chains.first() {
            let plugins = chain.plugins();
            // Every worker's instance of each step is replaced.
            for (plugin, _) in &plugins {
                let metrics = crate::metrics::global().instance(&self.config.name, plugin);
                for _ in &prepared.chains {
                    metrics.replaced(Replacement::Reload);
                }
            }
            self.status.swapped(plugins);
        }
        for (tx, chain) in self.workers.iter().zip(prepared.chains) {
            tx.send(WorkerMsg::Swap(chain))
                .map_err(|_| PipelineError::new(&self.config.name, Why::Stopping))?;
        }
        Ok(())
    }

    /// Asks the pipeline to stop without waiting; [`Pipeline::stop`] waits.
    pub fn begin_stop(&self) {
        self.cancel.cancel();
    }

    /// Stops fetching, finishes the batches in flight, waits for their
    /// records to be acknowledged, commits and leaves the group.
    pub fn stop(mut self) -> Result<(), PipelineError> {
        self.cancel.cancel();
        self.workers.clear();
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(PipelineError::new(&self.config.name, Why::Panicked)),
            _ => Ok(()),
        }
    }

    /// Whether the poll thread has ended (it only does when stopped, or
    /// if it panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl PreparedPipeline {
    /// The configuration it will run.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Whether a plugin of its chain keeps state (it then needs its
    /// changelog topic).
    pub fn keeps_state(&self) -> bool {
        self.keeps_state
    }

    /// Creates the producer and the consumer, starts the workers and the
    /// poll thread, and joins the group.
    pub fn start(self, kafka: &KafkaConfig, brokers: &str) -> Result<Pipeline, PipelineError> {
        let PreparedPipeline {
            config,
            chains,
            keeps_state,
        } = self;
        let exactly_once = config.delivery == Delivery::ExactlyOnce;
        let name = &config.name;
        let client_error = |client| move |e| PipelineError::new(name, Why::Client(client, e));
        let thread_error = |e| PipelineError::new(name, Why::Thread(e));
        let versions = chains.first().map(Chain::versions).unwrap_or_default();
        let status = Arc::new(PipelineStatus::new(
            &config,
            chains.first().map(Chain::plugins).unwrap_or_default(),
        ));

        let (control_tx, control_rx) = mpsc::sync_channel(CONTROL_CAPACITY);
        let control = ControlTx::new(control_tx);
        let mut producer_config = kafka::producer_config(kafka, brokers);
        let mut consumer_config = kafka::consumer_config(kafka, brokers, &config.group_id);
        if exactly_once {
            producer_config.set("transactional.id", kafka.transactional_id(&config.group_id));
            // Offsets are committed in the transactions, and only what
            // other transactions committed is read.
            consumer_config
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        }
        let sink = Arc::new(
            Sink::new(
                &producer_config,
                control.clone(),
                (config.dlq.clone(), config.state.changelog.clone()),
                status.clone(),
            )
            .map_err(client_error("producer"))?,
        );
        if exactly_once {
            let producer = sink.producer();
            producer
                .init_transactions(TRANSACTIONS_INIT_TIMEOUT)
                .and_then(|()| producer.begin_transaction())
                .map_err(|e| PipelineError::new(name, Why::Transactions(e)))?;
        }
        let answers = control.clone();
        let recovery = Recovery::start(
            kafka,
            brokers,
            &config,
            keeps_state,
            exactly_once,
            Box::new(move |recovered| {
                answers.send(control::Control::Recovered(Box::new(recovered)));
            }),
        )
        .map_err(|e| {
            let why = match e {
                RecoveryError::Client(client, e) => Why::Client(client, e),
                RecoveryError::Thread(e) => Why::Thread(e),
            };
            PipelineError::new(name, why)
        })?;
        let consumer: BaseConsumer<GroupContext> = consumer_config
            .create_with_context(GroupContext::new(name))
            .map_err(client_error("consumer"))?;
        let topics: Vec<&str> = config.inputs.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| PipelineError::new(name, Why::Subscribe(config.inputs.clone(), e)))?;

        let live = Arc::new(Live::default());
        let refused = Arc::new(RefusedOutputs::default());
        let shared = Arc::new(WorkerShared {
            pipeline: name.as_str().into(),
            config: config.clone(),
            sink: sink.clone(),
            control,
            metrics: crate::metrics::global().pipeline(name),
            live: live.clone(),
            state_names: config.state_names(),
            refused: refused.clone(),
        });
        let mut inboxes = Vec::new();
        let mut worker_threads = Vec::new();
        for (index, chain) in chains.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(WORKER_INBOX);
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-{name}-w{index}"))
                .spawn(move || worker::run(chain, rx, shared))
                .map_err(thread_error)?;
            inboxes.push(tx);
            worker_threads.push(thread);
        }
        drop(shared);

        let cancel = CancellationToken::new();
        let mut poller = Poller::new(PollerParts {
            name: name.clone(),
            consumer,
            sink,
            control: control_rx,
            dispatcher: Dispatcher::new(inboxes.clone(), config.batch_size, keeps_state),
            worker_threads,
            status: status.clone(),
            cancel: cancel.clone(),
            max_in_flight: config.max_in_flight,
            live,
            recovery,
            keeps_state,
            commit_interval: exactly_once.then_some(config.commit_interval),
            refused,
        });
        let thread = std::thread::Builder::new()
            .name(format!("sluice-{name}-poll"))
            .spawn(move || poller.run())
            .map_err(thread_error)?;
        tracing::info!(
            pipeline = %name,
            inputs = ?config.inputs,
            output = %config.output,
            dlq = %config.dlq,
            plugins = ?versions,
            workers = inboxes.len(),
            delivery = config.delivery.as_str(),
            changelog = keeps_state.then_some(config.state.changelog.as_str()),
            "pipeline started"
        );
        Ok(Pipeline {
            config,
            status,
            cancel,
            thread: Some(thread),
            workers: inboxes,
            keeps_state,
        })
    }
}

/// One chain of fresh instances (each `init` run), as each worker of the
/// pipeline has.
pub(crate) fn build_chain(
    config: &PipelineConfig,
    plugins: &[Arc<CompiledPlugin>],
) -> Result<Chain, PipelineError> {
    let runners = config
        .steps
        .iter()
        .zip(plugins)
        .map(|(step, plugin)| {
            let settings = Arc::new(config.instance_settings(step));
            let limits = config.state.limits;
            // Only a stateful step journals its changes for the changelog.
            let state = if plugin.keeps_state() {
                PluginState::journaled(limits)
            } else {
                PluginState::new(limits)
            };
            PluginRunner::with_state(plugin.clone(), settings, state)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PipelineError::new(&config.name, Why::Plugin(e)))?;
    Ok(Chain::new(runners))
}

/// One chain per worker.
fn build_chains(
    config: &PipelineConfig,
    plugins: &[Arc<CompiledPlugin>],
    workers: usize,
) -> Result<Vec<Chain>, PipelineError> {
    (0..workers).map(|_| build_chain(config, plugins)).collect()
}
