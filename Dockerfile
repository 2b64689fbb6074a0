# initbox image: the static binary and a CA bundle in an otherwise empty image, run as a
# non-root user. `docker build .` compiles from source; `--target prebuilt` packages a binary
# already built with scripts/build-static (what CI does, with no base image to pull).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --locked --release --target x86_64-unknown-linux-musl \
 && mkdir -p /out/etc/ssl/certs \
 && cp target/x86_64-unknown-linux-musl/release/initbox /out/initbox \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

# What every variant shares: no shell, no package manager, a numeric non-root user (a scratch
# image has no /etc/passwd), and initbox as the entrypoint.
FROM scratch AS base
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="initbox" \
      org.opencontainers.image.description="One static binary for Kubernetes initContainers: wait for dependencies, migrate, fetch secrets, fix permissions, render config" \
      org.opencontainers.image.source="https://github.com/initbox/initbox" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["/initbox"]
CMD ["--help"]

# Packages target/x86_64-unknown-linux-musl/release/initbox and target/image/ca-certificates.crt
# (scripts/build-image puts the system bundle there).
FROM base AS prebuilt
COPY target/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY target/x86_64-unknown-linux-musl/release/initbox /initbox

FROM base
COPY --from=builder /out/ /
