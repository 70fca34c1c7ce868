# The operator's container image.
#
#   docker build -t cognito-mfa-operator .
#   docker run --rm cognito-mfa-operator crd        # print the CRD
#   docker run ... cognito-mfa-operator             # run the controller (CMD ["run"])
#
# Two stages: the binary is built in the official Rust image and copied alone into distroless
# (no shell, no package manager), which runs it as a numeric non-root user.
# hack/dockerfile-lint.sh lints this file and checks the project's rules on it.

# --- build --------------------------------------------------------------------------------------
# Bookworm, not trixie: the binary links against glibc dynamically, and the runtime image below is
# Debian 12 (bookworm, glibc 2.36). Building on a newer glibc than the one it runs on can make it
# fail to start ("GLIBC_2.38 not found"). Move both stages to Debian 13 together, never one alone.
# The slim variant has gcc and libc6-dev, which is all that ring (rustls' crypto) needs.
# The Rust version is at least the crate's rust-version (1.94); Cargo.lock pins the rest.
FROM rust:1.95.0-slim-bookworm AS build

WORKDIR /build

# Dependencies first, in a layer of their own: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit. A dummy lib.rs and main.rs let cargo compile every
# dependency without the real sources.
#
# Why a dummy build rather than BuildKit cache mounts (RUN --mount=type=cache) for the cargo
# registry and target/: a cache mount lives only in the builder that made it, so it is empty on
# fresh CI runners, and the binary has to be copied out of it by hand; a layer is an ordinary
# image layer, so it also works with the legacy builder, Podman/Buildah and Kaniko, and can be
# shared through a registry (docker buildx build --cache-to/--cache-from type=registry,...).
#
# Cargo.toml's [[test]] targets (tests/it, tests/e2e) are not in the build context (see
# .dockerignore): cargo does not check that a target's explicit path exists when it reads the
# manifest, and `cargo build` compiles only the library and the binaries.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources. COPY keeps the files' own modification times, which can be older than the
# dummy build's outputs: touching the crate roots makes cargo rebuild the crate (and only it).
# Running `crd` proves that the real binary was built (the dummy prints nothing) and that it starts
# on this glibc.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && target/release/cognito-mfa-operator crd > /tmp/crd.yaml \
    && test -s /tmp/crd.yaml

# --- runtime ------------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates (for AWS's and the Kubernetes API server's TLS),
# nothing else. The :nonroot tag's default user is 65532; USER repeats it numerically so that
# Kubernetes' runAsNonRoot can verify it without a user database.
FROM gcr.io/distroless/cc-debian12:nonroot

# Set at build time, e.g. --build-arg SOURCE=https://... --build-arg REVISION="$(git rev-parse HEAD)"
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=""
LABEL org.opencontainers.image.title="cognito-mfa-operator" \
      org.opencontainers.image.description="Kubernetes operator that owns the MFA and passkey settings of Amazon Cognito user pools" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"

# Owned by root and not writable by the user that runs it (the release profile already strips it).
COPY --from=build /build/target/release/cognito-mfa-operator /cognito-mfa-operator

USER 65532:65532
# Metrics (/metrics) and probes (/healthz, /readyz) on --metrics-addr, by default 0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/cognito-mfa-operator"]
CMD ["run"]
