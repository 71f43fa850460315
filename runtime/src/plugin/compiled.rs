//! A plugin file turned into something ready to instantiate: read, hashed,
//! compiled, its imports linked and its exports checked against the world.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::PluginError;
use super::bindings::StatefulProcessorPre;
use super::engine::PluginEngine;
use super::host::HostState;
use super::log_limit::LogLimit;

/// The interface a plugin imports to keep state, without its version.
const STATE_INTERFACE: &str = "sluice:plugin/state";

/// The first eight bytes of a core WebAssembly module (not a component).
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// A validated, compiled plugin. Instantiating it is cheap; compiling it is
/// not, which is why hot reload compiles off the hot path.
pub struct CompiledPlugin {
    name: Arc<str>,
    path: PathBuf,
    digest: Arc<str>,
    pre: StatefulProcessorPre<HostState>,
    engine: PluginEngine,
    log_limit: Arc<LogLimit>,
    /// Whether it imports [`STATE_INTERFACE`].
    keeps_state: bool,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("digest", &self.digest)
            .field("keeps_state", &self.keeps_state)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    /// Reads and compiles the component at `path`, checking that it
    /// implements the `processor` world. `name` labels errors and logs.
    pub fn load(engine: &PluginEngine, name: &str, path: &Path) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            name: name.to_owned(),
            path: path.to_owned(),
            error: source,
        })?;
        Self::from_bytes(engine, name, path, &bytes)
    }

    /// Like [`CompiledPlugin::load`] for bytes already in memory; `path` is
    /// only used in messages.
    pub fn from_bytes(
        engine: &PluginEngine,
        name: &str,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Self, PluginError> {
        let compile_error = |message: String| PluginError::Compile {
            name: name.to_owned(),
            path: path.to_owned(),
            message,
        };
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            name: name.to_owned(),
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        if bytes.starts_with(&CORE_MODULE_HEADER) {
            return Err(compile_error(
                "this is a core WebAssembly module, not a component; build the plugin with \
                 `cargo build --target wasm32-wasip2`"
                    .into(),
            ));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(compile_error(
                "not a WebAssembly file (no `\\0asm` header)".into(),
            ));
        }
        let digest = digest_of(bytes);
        let compile = |bytes: &[u8]| engine.compile(bytes);
        let component = match engine.cache() {
            Some(cache) => cache
                .load_or_compile(engine.engine(), &digest, bytes, compile)
                .map(|(component, source)| {
                    tracing::debug!(plugin = name, ?source, "component ready");
                    component
                }),
            None => compile(bytes),
        }
        .map_err(|e| compile_error(format!("{e:#}")))?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = StatefulProcessorPre::new(instance_pre).map_err(wrong_world)?;
        let keeps_state = component
            .component_type()
            .imports(engine.engine())
            .any(|(import, _)| import.split('@').next() == Some(STATE_INTERFACE));
        let name: Arc<str> = name.into();
        Ok(CompiledPlugin {
            log_limit: Arc::new(LogLimit::new(Arc::clone(&name))),
            name,
            path: path.to_owned(),
            digest: digest.into(),
            pre,
            engine: engine.clone(),
            keeps_state,
        })
    }

    /// The name the plugin is known by in logs and DLQ headers.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `sha256:<hex>` of the file's bytes: which version produced a record.
    pub fn digest(&self) -> &Arc<str> {
        &self.digest
    }

    /// Whether it imports `sluice:plugin/state` (the `stateful-processor`
    /// world): its runner keeps state for it.
    pub fn keeps_state(&self) -> bool {
        self.keeps_state
    }

    pub(crate) fn pre(&self) -> &StatefulProcessorPre<HostState> {
        &self.pre
    }

    pub(crate) fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The budget of log lines its instances share.
    pub(crate) fn log_limit(&self) -> &Arc<LogLimit> {
        &self.log_limit
    }
}

/// The digest of a plugin file as it appears in headers and logs.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The first 12 hex digits of a digest, enough to tell versions apart in
/// logs.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}
