//! What a plugin may see of the outside world. Everything is denied unless a
//! pipeline grants it: no environment, no filesystem, no network (sockets,
//! name lookups, `wasi:http` requests).

use std::path::PathBuf;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

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
            // Each use must be allowed besides the address check: wasmtime
            // denies TCP, UDP and name lookups by default.
            builder
                .inherit_network()
                .allow_ip_name_lookup(true)
                .allow_tcp(true)
                .allow_udp(true);
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

/// What a plugin's `wasi:http` requests may do: nothing, unless the
/// sandbox grants the network. (Requests go out from the host, not through
/// the guest's sockets, so the socket rules above do not cover them.)
#[derive(Debug)]
pub(crate) struct HttpHooks {
    pub network: bool,
}

/// The future a response or its failure arrives on.
type Sent = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Sent {
        drop(fut);
        if !self.network {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
