#!/usr/bin/env bash
# Creates the virtual environment and installs StoreGuard with its test extras.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found. Install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)." >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: StoreGuard needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1). Run: make PYTHON=python3.11 ..." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment in $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> python venv module missing: installing python3-venv with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV"
    else
      echo "error: '$PYTHON -m venv' failed. On Debian/Ubuntu run: sudo apt-get install python3-venv, then make again." >&2
      exit 1
    fi
  fi
fi
echo "==> installing StoreGuard and its pinned dependencies into $VENV (first run takes a minute)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
echo "==> environment ready: $VENV"
