//! Compiled components on disk, so a restart, a `sluice check` or the
//! re-deploy of a version already seen skips compilation: seconds and
//! ~500 MB for a Python or JavaScript component, a tenth of a second for
//! a Rust one.
//!
//! An entry is keyed by what makes compiled code valid: the component's
//! digest, the engine's configuration and the wasmtime version (wasmtime's
//! own compatibility hash covers both). It holds a checksum of its
//! contents, which is checked before wasmtime is handed the bytes, and
//! wasmtime checks its own header again: a corrupt, truncated or foreign
//! entry is recompiled and replaced, never run. Entries are written to a
//! temporary name and renamed, so a crash never leaves half an entry, and
//! deleting the directory at any time is safe.
//!
//! The directory is `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`,
//! else `~/.cache/sluice`; `SLUICE_CACHE_DIR=off` turns the cache off.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// The environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "SLUICE_CACHE_DIR";

/// The first bytes of an entry.
const MAGIC: &[u8; 8] = b"sluice1\n";

/// Compiled components on disk.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (and stored, if the cache could write).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl ComponentCache {
    /// The cache the environment asks for; `None` when it is turned off or
    /// no directory can be found. `var` reads one environment variable:
    /// the CLI passes the process environment, tests their own.
    pub fn from_env(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<Self> {
        let dir = match var(CACHE_DIR_ENV) {
            Some(dir) if dir == "off" => return None,
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => var("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?
                .join("sluice"),
        };
        Some(ComponentCache::at(dir))
    }

    /// A cache in `dir` (created when first written).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component for `bytes` (whose digest is `digest`): from the cache
    /// if a valid entry is there, else made by `compile` and stored. Cache
    /// problems are logged and cost a compile, never an error.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        digest: &str,
        bytes: &[u8],
        compile: impl FnOnce(&[u8]) -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<(Component, Source)> {
        let path = self.entry_path(engine, digest);
        if let Some(component) = self.load(engine, &path) {
            return Ok((component, Source::Cached));
        }
        let component = compile(bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled-plugin cache");
        }
        Ok((component, Source::Compiled))
    }

    /// Where the entry of `digest` for this engine lives.
    pub fn entry_path(&self, engine: &wasmtime::Engine, digest: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hasher.finish();
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{hex}-{engine_key:016x}.cwasm"))
    }

    fn load(&self, engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
        let entry = std::fs::read(path).ok()?;
        let Some(payload) = checked_payload(&entry) else {
            tracing::warn!(path = %path.display(), "corrupt compiled-plugin cache entry; compiling again");
            return None;
        };
        // SAFETY: `payload` is what `Component::serialize` wrote for an
        // engine with this compatibility hash (the key), and its checksum
        // matched, so it is not a truncated or altered file; wasmtime
        // checks its header against this engine as well.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable compiled-plugin cache entry; compiling again");
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize()?;
        std::fs::create_dir_all(&self.dir)?;
        let mut entry = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(&Sha256::digest(&payload));
        entry.extend_from_slice(&payload);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &entry)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(())
    }
}

/// The payload of an entry whose magic and checksum are right.
fn checked_payload(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    let (sum, payload) = rest.split_at_checked(32)?;
    (Sha256::digest(payload).as_slice() == sum).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component there is.
    const EMPTY_COMPONENT: &str = "(component)";

    fn engine() -> wasmtime::Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        wasmtime::Engine::new(&config).expect("an engine")
    }

    #[test]
    fn a_second_load_comes_from_the_cache_and_a_corrupt_entry_is_recompiled() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cache = ComponentCache::at(dir.path().join("cache"));
        let engine = engine();
        // wasmtime compiles the text format as well.
        let bytes = EMPTY_COMPONENT.as_bytes();
        let digest = "sha256:00ff";

        let (_, first) = cache
            .load_or_compile(&engine, digest, bytes, |b| Component::new(&engine, b))
            .expect("compiles");
        assert_eq!(first, Source::Compiled);
        let (_, second) = cache
            .load_or_compile(&engine, digest, bytes, |b| Component::new(&engine, b))
            .expect("loads");
        assert_eq!(second, Source::Cached);

        // Flip one byte of the payload: the checksum catches it.
        let path = cache.entry_path(&engine, digest);
        let mut entry = std::fs::read(&path).expect("an entry");
        let last = entry.len() - 1;
        entry[last] ^= 0xff;
        std::fs::write(&path, &entry).expect("corrupt it");
        let (_, third) = cache
            .load_or_compile(&engine, digest, bytes, |b| Component::new(&engine, b))
            .expect("compiles");
        assert_eq!(third, Source::Compiled);
        let (_, fourth) = cache
            .load_or_compile(&engine, digest, bytes, |b| Component::new(&engine, b))
            .expect("loads");
        assert_eq!(fourth, Source::Cached, "the bad entry was replaced");

        // A truncated entry, and a file that is no entry at all.
        for junk in [&entry[..20], b"not a cache entry".as_slice()] {
            std::fs::write(&path, junk).expect("write junk");
            let (_, source) = cache
                .load_or_compile(&engine, digest, bytes, |b| Component::new(&engine, b))
                .expect("compiles");
            assert_eq!(source, Source::Compiled);
        }
    }

    #[test]
    fn another_engine_configuration_has_entries_of_its_own() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cache = ComponentCache::at(dir.path());
        let plain = engine();
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let other = wasmtime::Engine::new(&config).expect("an engine");
        assert_ne!(
            cache.entry_path(&plain, "sha256:aa"),
            cache.entry_path(&other, "sha256:aa")
        );

        // An entry written for one engine, found under the other's name,
        // is refused by wasmtime and recompiled.
        let bytes = EMPTY_COMPONENT.as_bytes();
        cache
            .load_or_compile(&plain, "sha256:aa", bytes, |b| Component::new(&plain, b))
            .expect("compiles");
        std::fs::copy(
            cache.entry_path(&plain, "sha256:aa"),
            cache.entry_path(&other, "sha256:aa"),
        )
        .expect("copy the entry");
        let (_, source) = cache
            .load_or_compile(&other, "sha256:aa", bytes, |b| Component::new(&other, b))
            .expect("compiles");
        assert_eq!(source, Source::Compiled);
    }
}
