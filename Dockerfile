# syntax=docker/dockerfile:1
# initbox image, for linux/amd64 and linux/arm64: the static binary and a CA bundle in an
# otherwise empty image, run as a non-root user.
#   docker buildx build --platform linux/amd64,linux/arm64 .
#       compiles from source: the builder runs on the build machine's own platform and
#       cross-compiles for each target platform, so nothing runs under emulation;
#   buildah bud --target prebuilt [--platform linux/arm64] .
#       packages what scripts/build-static [aarch64] built and staged in target/image/ (what CI
#       and releases do; no base image is pulled).

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
# The cross gcc for ring's C and assembly when the target is not the build machine's own
# architecture (scripts/build-static chooses; $cross is two package names, or none); the CA
# bundle the image ships comes from here.
# hadolint ignore=DL3008,SC2086
RUN case "$TARGETARCH" in \
      amd64) arch=x86_64 cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) arch=aarch64 cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported target architecture: $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && if [ "$arch" = "$(uname -m)" ]; then cross=; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates file $cross \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$arch-unknown-linux-musl"
WORKDIR /src
COPY . .
# The build context leaves .git out: for `initbox --version` to name the commit, pass
# --build-arg INITBOX_BUILD_COMMIT=$(git rev-parse --short=12 HEAD).
ARG INITBOX_BUILD_COMMIT=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    scripts/build-static "$TARGETARCH" \
 && mkdir -p /out/etc/ssl/certs \
 && cp "target/image/$TARGETARCH/initbox" /out/initbox \
 && cp target/image/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

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

# Packages the binary and CA bundle that `scripts/build-static [x86_64|aarch64]` staged for the
# target platform; it runs with nothing else prepared first.
FROM base AS prebuilt
ARG TARGETARCH
COPY target/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY target/image/${TARGETARCH}/initbox /initbox

FROM base
COPY --from=builder /out/ /
