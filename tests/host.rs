//! The integration tests that need no broker: the plugin host at library
//! level, plugin state, `sluice exec`, guest languages and `sluice new`.
//! One binary, so wasmtime and rdkafka are linked once (see
//! `runtime/Cargo.toml`); each file is a module.

#[path = "exec_cli.rs"]
mod exec_cli;
#[path = "guest_state.rs"]
mod guest_state;
#[path = "guests.rs"]
mod guests;
#[path = "plugin_host.rs"]
mod plugin_host;
#[path = "scaffold.rs"]
mod scaffold;
#[path = "state.rs"]
mod state;
