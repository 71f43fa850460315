//! Logging through the host: lines land in the host's log, tagged with the
//! pipeline and plugin name.
//!
//! ```
//! use sluice_sdk::log;
//!
//! log::info("ready");
//! log::warn(format!("skipping {} malformed headers", 2));
//! ```
//!
//! The host drops lines below its configured level cheaply, but the message
//! is still built in the plugin: keep per-event logging at `debug`/`trace`
//! and avoid expensive `format!`s on the hot path.
//!
//! On a non-Wasm target (unit tests of a plugin on the host) there is no
//! host to call, so lines go to stderr instead.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The level's lower-case name, as in `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes `message` to the host's log at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    write(level, message.as_ref());
}

/// Writes `message` at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message.as_ref());
}

/// Writes `message` at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message.as_ref());
}

/// Writes `message` at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message.as_ref());
}

/// Writes `message` at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message.as_ref());
}

/// Writes `message` at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message.as_ref());
}

#[cfg(target_arch = "wasm32")]
fn write(level: Level, message: &str) {
    use crate::__bindings::sluice::plugin::host;
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

// The generated import is an `unreachable!()` stub off Wasm; stderr keeps
// plugin unit tests on the host usable.
#[cfg(not(target_arch = "wasm32"))]
fn write(level: Level, message: &str) {
    eprintln!("[plugin {}] {message}", level.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_named() {
        assert!(Level::Trace < Level::Error);
        assert_eq!(Level::Warn.as_str(), "warn");
        // Off Wasm these go to stderr and must not panic.
        log(Level::Info, "hello");
        trace("t");
        debug(String::from("d"));
        info("i");
        warn("w");
        error("e");
    }
}
