//! What a plugin may see of the outside world. Everything is denied unless a
//! pipeline grants it: no environment, no filesystem, no network.

use std::path::PathBuf;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::PluginError;
use super::stdio::TailBuffer;

/// Capabilities granted to a plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Environment variables the plugin can read, as name and value.
    pub env: Vec<(String, String)>,
    /// Host directories made visible to the plugin.
    pub dirs: Vec<DirGrant>,
    /// Whether the plugin may open network sockets and resolve names.
    pub network: bool,
}

/// One host directory granted to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it (for example `/data`).
    pub guest: String,
    /// Whether the plugin may write there.
    pub writable: bool,
}

impl Sandbox {
    /// Builds the WASI context of one instance, with its stdout and stderr
    /// captured into `stdio`.
    pub(crate) fn build(&self, stdio: &TailBuffer) -> Result<WasiCtx, PluginError> {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdio.clone()).stderr(stdio.clone());
        for (name, value) in &self.env {
            builder.env(name, value);
        }
        for dir in &self.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| PluginError::Sandbox {
                    message: format!("cannot grant directory {}: {e:#}", dir.host.display()),
                })?;
        }
        if self.network {
            builder.inherit_network().allow_ip_name_lookup(true);
        } else {
            // The default already denies every address; say it so a future
            // change of default cannot open the sandbox silently.
            builder
                .socket_addr_check(|_, _| Box::pin(async { false }))
                .allow_ip_name_lookup(false)
                .allow_tcp(false)
                .allow_udp(false);
        }
        Ok(builder.build())
    }
}
