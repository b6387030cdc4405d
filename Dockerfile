# syntax=docker/dockerfile:1
#
# One image, three binaries: gateway-svc (the default), ib-sim and dashboard-client.
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
COPY . .
# The registry cache only speeds up rebuilds; the binaries stay in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p gateway-svc -p ib-sim -p dashboard-client

# ---------------------------------------------------------------------------------------------
# Runtime stage: Debian slim, CA certificates, an unprivileged user, the three binaries.
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
COPY --from=builder /src/target/release/ib-sim /usr/local/bin/ib-sim
COPY --from=builder /src/target/release/dashboard-client /usr/local/bin/dashboard-client

# gateway-svc reads ./gateway.toml when present: mount one at /etc/ibgw/gateway.toml, or use
# IBGW__SECTION__KEY environment variables.
WORKDIR /etc/ibgw
USER 10001:10001

# 50051 gRPC (gateway-svc), 9464 ops HTTP: /metrics /healthz /readyz (gateway-svc),
# 8080 web dashboard (dashboard-client).
EXPOSE 50051 9464 8080

# Healthy only while the upstream IB session is ready (grpc.health.v1 over the gRPC port).
# Containers that run ib-sim or dashboard-client from this image must disable or replace it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["gateway-svc", "health"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway-svc"]
CMD ["serve"]
