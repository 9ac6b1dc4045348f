# Shared helpers for the scripts in scripts/. Source it; do not run it.
# shellcheck shell=bash

# shellcheck disable=SC2034
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# as_root CMD...: runs CMD as root (directly when we are root, else through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_commands "cmd:debian-package" ...: installs the Debian packages whose command is missing.
ensure_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Build tools the workspace needs: libjpeg-turbo 3 is built from source (cmake, nasm).
ensure_build_tools() {
    ensure_commands cmake:cmake nasm:nasm meson:meson ninja:ninja-build cc:gcc prlimit:util-linux python3:python3
    command -v cargo >/dev/null 2>&1 || {
        echo "cargo is not installed: install Rust from https://rustup.rs first" >&2
        exit 1
    }
}

# Debug builds of the daemon, the pump and the edge for the demo's browser tier and the
# box tier: `--workspace --all-targets`, the targets `cargo test --workspace` builds, so
# cargo unifies features the same way and after the tests there is nothing to build (with
# `-p` for the three packages it rebuilt the daemon and its TLS stack with another feature
# set: 3.7 minutes on a warm 2-core machine, more on a cold one).
build_debug_binaries() {
    cargo build --locked --workspace --all-targets
}

# Where ../shared/corpus is, if anywhere.
corpus_dir() {
    local dir="${PIPELINE_CORPUS:-$root/../shared/corpus}"
    if [ -d "$dir/photos" ] && [ -d "$dir/hostile" ]; then
        (cd "$dir" && pwd)
    fi
}

# The project's Python tools live in .venv/ (git-ignored), pinned.
venv="$root/.venv"
MOTO_VERSION="5.2.5" # 5.2.1 breaks multipart uploads from the Rust SDK

ensure_venv() {
    if [ ! -x "$venv/bin/python" ]; then
        say "creating virtualenv $venv"
        python3 -m venv "$venv"
    fi
}

# ensure_moto: the S3/DynamoDB/SQS emulator the end-to-end tests and the demo run against.
ensure_moto() {
    ensure_venv
    if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
        || [ ! -x "$venv/bin/moto_server" ]; then
        say "installing moto[server]==$MOTO_VERSION into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    export MOTO_SERVER="$venv/bin/moto_server"
}

# ensure_demo_tools: the aws CLI and Pillow (the demo's sample photos) in .venv/.
ensure_demo_tools() {
    ensure_venv
    if [ ! -x "$venv/bin/aws" ] || ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
        say "installing the aws CLI and Pillow into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "awscli==1.46.2" "pillow==13.0.0"
    fi
}

# ensure_s3s [debug|release]: the S3 server that enforces what moto does not (POST
# policies, signatures, expiry), and the fast S3 of scripts/bench-e2e: s3s-fs from
# crates.io, built once (its own Cargo.lock) into .cache/s3s-fs-VERSION[-debug]/ and
# reused; exports S3S_FS, its path. The tests use the debug build (it compiles in about a
# third of the time; its speed does not matter there), the benchmark the release build.
# Not a workspace member: s3s 0.14 needs crc-fast 1.10+, which the AWS SDK's checksums
# crate (~1.6) excludes.
S3S_VERSION="0.14.1"
ensure_s3s() {
    local profile="${1:-debug}" dir flags=()
    if [ "$profile" = release ]; then
        dir="$root/.cache/s3s-fs-$S3S_VERSION"
    else
        dir="$root/.cache/s3s-fs-$S3S_VERSION-debug"
        flags=(--debug)
    fi
    if [ ! -x "$dir/bin/s3s-fs" ]; then
        say "building s3s-fs $S3S_VERSION ($profile; the policy-enforcing S3 of the tests; a few minutes, once)"
        cargo install --quiet --locked "${flags[@]}" --root "$dir" --version "$S3S_VERSION" --features binary \
            --target-dir "$root/.cache/s3s-fs-build-$profile" s3s-fs >&2
        rm -rf "$root/.cache/s3s-fs-build-$profile"
    fi
    export S3S_FS="$dir/bin/s3s-fs"
}

# ensure_dynalite: the DynamoDB of scripts/bench-e2e: dynalite (the DynamoDB API in Node.js,
# in memory), pinned, installed once from npm into .cache/dynalite-VERSION/; exports
# DYNALITE, its cli.js. On a 2-core box the emulators' CPU is taken from the daemon being
# measured: moto costs about 11 ms of CPU per conditional UpdateItem here, dynalite about 2.
# The tests keep moto (pinned, and what the standards name).
DYNALITE_VERSION="4.0.0"
ensure_dynalite() {
    ensure_commands node:nodejs npm:npm
    local dir="$root/.cache/dynalite-$DYNALITE_VERSION"
    if [ ! -f "$dir/node_modules/dynalite/cli.js" ]; then
        say "installing dynalite $DYNALITE_VERSION into $dir"
        mkdir -p "$dir"
        (cd "$dir" && npm install --silent --no-audit --no-fund "dynalite@$DYNALITE_VERSION" >/dev/null)
    fi
    export DYNALITE="$dir/node_modules/dynalite/cli.js"
}

# ensure_browser_tools: Debian's Chromium (headless) and Playwright's Python package (pinned)
# in .venv/ to drive it; Playwright's own browser download is never used.
PLAYWRIGHT_VERSION="1.65.2"
ensure_browser_tools() {
    ensure_commands chromium:chromium
    ensure_venv
    if ! "$venv/bin/python" -c "import playwright, importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
        say "installing playwright==$PLAYWRIGHT_VERSION into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
    fi
}
