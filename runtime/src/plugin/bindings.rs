//! The host side of the plugin contract: the project's one `bindgen!`,
//! generated from `wit/` so host and SDK can never disagree on the types.
//!
//! The world is `stateful-processor`: its exports are `processor`'s, so a
//! plugin built against `processor` links too (it just leaves the `state`
//! imports unused).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stateful-processor",
    // A write over a state limit traps the call (see `state`).
    imports: { "sluice:plugin/state": trappable },
});

pub use self::sluice::plugin::host::Level;
pub use self::sluice::plugin::state::Error as StateError;
