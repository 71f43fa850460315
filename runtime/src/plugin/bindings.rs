//! The host side of the plugin contract: the project's one `bindgen!`,
//! generated from `wit/` so host and SDK can never disagree on the types.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "processor",
});

pub use self::sluice::plugin::host::Level;
