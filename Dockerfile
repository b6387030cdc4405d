# syntax=docker/dockerfile:1
#
# The production image, two binaries: gateway-svc (the default) and dashboard-client. It holds no
# simulator: ib-sim and ibgw-demo have an image of their own (demo/Dockerfile), and gateway-svc's
# dependency graph has no ib-sim, so nothing here can start a fault-injecting simulator or its
# control API.
#
#   docker build -t ibgw/gateway-svc:local .
#   docker run --rm ibgw/gateway-svc:local check-config
#
# Base images are pinned by tag. For byte-for-byte reproducible builds, pin them by digest too
# (`rust:1.95-bookworm@sha256:…`) and bump the digests deliberately.

# ---------------------------------------------------------------------------------------------
# Build stage: the whole workspace, release profile, exactly the versions in Cargo.lock.
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# gateway-svc needs --cfg tokio_unstable to turn tokio's LIFO slot off (batched HTTP/2 writes;
# docs/BENCHMARKS.md, F7). .cargo/config.toml sets it, but a RUSTFLAGS variable replaces that
# setting instead of adding to it, so it is set here explicitly: keep it in any flags you add.
# Without it the service logs a start-up warning and exports ibgw_runtime_tuned 0.
ENV RUSTFLAGS="--cfg tokio_unstable"
COPY . .
# The registry cache only speeds up rebuilds; the binaries stay in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p gateway-svc -p dashboard-client

# ---------------------------------------------------------------------------------------------
# Runtime stage: Debian slim, CA certificates, an unprivileged user, the two binaries.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ibgw \
    && useradd --system --uid 10001 --gid ibgw --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin ibgw \
    && mkdir -p /etc/ibgw

COPY --from=builder /src/target/release/gateway-svc /usr/local/bin/gateway-svc
COPY --from=builder /src/target/release/dashboard-client /usr/local/bin/dashboard-client

# gateway-svc reads ./gateway.toml when present: mount one at /etc/ibgw/gateway.toml, or use
# IBGW__SECTION__KEY environment variables.
WORKDIR /etc/ibgw
USER 10001:10001

# 50051 gRPC (gateway-svc), 9464 ops HTTP: /metrics /healthz /readyz (gateway-svc),
# 8080 web dashboard (dashboard-client).
EXPOSE 50051 9464 8080

# Healthy only while the upstream IB session is ready (grpc.health.v1 over the gRPC port).
# Without --addr, `gateway-svc health` reads the service's own configuration (IBGW__ variables,
# ./gateway.toml): grpc.listen dialled on loopback, over TLS with grpc.tls_cert_path as the CA
# when TLS is configured (IBGW_HEALTH_TLS_CA / IBGW_HEALTH_TLS_DOMAIN override), so it follows
# the service with or without TLS.
# Containers that run dashboard-client from this image must disable or replace it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["gateway-svc", "health"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway-svc"]
CMD ["serve"]
