# syntax=docker/dockerfile:1
# Cairn's container images, built from one release build of the workspace:
#
#   docker build --target node     -t cairn-node .       gitaly, gitaly-hooks, gitaly-ssh (+ git)
#   docker build --target router   -t cairn-router .     praefect
#   docker build --target operator -t cairn-operator .   cairn-operator
#
# Debian 13 (trixie) throughout: its git is 2.47, the version the node is
# tested against (git 2.47 runs the reference-transaction hook for
# symbolic-ref, which transactions rely on; bookworm has 2.39), and the
# runtime images must have the builder's glibc.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS builder
WORKDIR /src
COPY . .
# One build for all three images. The registry and target directories are
# cache mounts, so a rebuild after a source change recompiles only our
# crates; the binaries are copied out of the cache mount in the same step.
# protoc is vendored by a crate, so no protobuf-compiler package is needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p cairn-node -p cairn-router -p cairn-operator -p cairn-bench \
    && mkdir -p /out \
    && cp target/release/gitaly target/release/gitaly-hooks target/release/gitaly-ssh \
          target/release/praefect target/release/cairn-operator target/release/cairn-load /out/

# The storage node. Repositories live on the volume at /var/opt/gitaly; the
# operator mounts config.toml at /etc/gitaly. cairn-load (the bench client)
# comes along: it creates repositories over gRPC, which e2e/ and admins use
# to check a cluster end to end.
FROM debian:trixie-slim AS node
# Debian's versions are not pinned (hadolint DL3008): a pin would break the
# build at the next security update of the suite.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 git \
    && useradd --uid 1000 --gid 1000 --home-dir /var/opt/gitaly --no-create-home --shell /usr/sbin/nologin git \
    && mkdir -p /var/opt/gitaly /etc/gitaly /var/run/gitaly \
    && chown 1000:1000 /var/opt/gitaly /var/run/gitaly
COPY --from=builder /out/gitaly /out/gitaly-hooks /out/gitaly-ssh /out/cairn-load /usr/local/bin/
USER 1000:1000
WORKDIR /var/opt/gitaly
# 8075 gRPC, 9999 gRPC over TLS, 9236 Prometheus metrics.
EXPOSE 8075 9999 9236
ENTRYPOINT ["/usr/local/bin/gitaly"]
CMD ["serve", "/etc/gitaly/config.toml"]

# The router. Stateless: its metadata is in PostgreSQL, its config.toml at
# /etc/praefect. `docker run cairn-router -config /etc/praefect/config.toml
# sql-migrate` runs a subcommand.
FROM debian:trixie-slim AS router
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 git \
    && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin git \
    && mkdir -p /etc/praefect
COPY --from=builder /out/praefect /usr/local/bin/
USER 1000:1000
# 2305 gRPC, 3305 gRPC over TLS, 9652 Prometheus metrics.
EXPOSE 2305 3305 9652
ENTRYPOINT ["/usr/local/bin/praefect"]
CMD ["-config", "/etc/praefect/config.toml"]

# The operator: one static-enough binary (glibc only) on distroless, as the
# non-root user the chart's securityContext names.
FROM gcr.io/distroless/cc-debian13:nonroot AS operator
COPY --from=builder /out/cairn-operator /usr/local/bin/
USER 65532:65532
# /healthz, /readyz and /metrics.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cairn-operator"]
