# The Sluice container image.
#
#   docker build -t sluice .        # from source, as is, with internet
#
# builds the host and the example Rust plugins in the official Rust image
# and copies them onto a small runtime base (distroless/cc: glibc, libgcc,
# CA certificates and a `nonroot` user, no shell). The image:
#   - runs as uid/gid 65532 (nonroot);
#   - has `sluice` as its entrypoint and runs
#     `sluice run /etc/sluice/pipeline.toml --http 0.0.0.0:9464` by default
#     (metrics, /healthz, /readyz and /api/status on port 9464);
#   - carries the example plugins in /plugins and the demo pipeline
#     (config/demo.toml) as /etc/sluice/pipeline.toml, which reads the
#     plugins from /plugins ($SLUICE_PLUGINS_DIR) and the brokers from
#     $KAFKA_BROKERS (unset: the embedded broker);
#   - /plugins and /etc/sluice are the mount points for your own plugins and
#     pipelines; Sluice hot-reloads what changes there.
#
# The `packaged` target packages an already-built release binary and the
# built plugins instead of compiling them (what CI does: no second wasmtime
# compile, no image pulled, RUNTIME_BASE pointing at a locally made base;
# see tests/containers/run):
#
#   cargo build --release && scripts/build-plugins
#   strip -o target/container/sluice target/release/sluice   # 170 MB -> 29 MB
#   docker build -t sluice --target packaged \
#       --build-arg SLUICE_BIN=target/container/sluice .
#
# The runtime stages use no RUN instruction, so any base with glibc works,
# including one without a shell. Works with BuildKit and with the classic
# builder (which builds every stage before the target: the Rust image comes
# last for that reason).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# For `packaged`: the binary to package, a path in the build context.
ARG SLUICE_BIN=target/release/sluice

# --- the already-built binary and plugins, from the build context ------------
FROM scratch AS prebuilt
ARG SLUICE_BIN
COPY ${SLUICE_BIN} /out/sluice
COPY plugins/order-enrich.wasm plugins/passthrough.wasm plugins/router.wasm /out/plugins/

# --- the runtime image, without its binary ------------------------------------
FROM ${RUNTIME_BASE} AS runtime-base
COPY config/demo.toml /etc/sluice/pipeline.toml
ENV SLUICE_PLUGINS_DIR=/plugins \
    SLUICE_CACHE_DIR=/tmp/sluice-cache
USER 65532:65532
WORKDIR /tmp
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "/etc/sluice/pipeline.toml", "--http", "0.0.0.0:9464"]

# --- target `packaged`: the runtime image with the prebuilt binary -------------
FROM runtime-base AS packaged
COPY --from=prebuilt /out/sluice /usr/local/bin/sluice
COPY --from=prebuilt /out/plugins/ /plugins/

# --- build from source ---------------------------------------------------------
FROM ${RUST_IMAGE} AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice --bin sluice \
 && cargo build --release --locked --target wasm32-wasip2 \
        -p order-enrich -p passthrough -p router \
 && mkdir -p /out/plugins \
 && strip -o /out/sluice target/release/sluice \
 && for p in order-enrich passthrough router; do \
        cp "target/wasm32-wasip2/release/$(echo "$p" | tr - _).wasm" "/out/plugins/$p.wasm"; \
    done

# --- the default target: the runtime image with the binary built above ------
FROM runtime-base AS runtime
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /out/plugins/ /plugins/
