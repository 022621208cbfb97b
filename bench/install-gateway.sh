#!/usr/bin/env bash
# Install the gateway's runtime requirements only (requirements.txt, what the production image installs)
# into bench/.venv-gateway: the bench measures the gateway from there, not from .venv, whose test and
# bench tools (selenium, moto, ...) pull in modules the gateway's libraries import when present (trio).
# Idempotent: does nothing while requirements.txt is unchanged since the last install; rebuilds the venv
# from scratch when it changed, so that nothing left over from older requirements stays in it.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="$HERE/.venv-gateway"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
INSTALLED="$VENV/requirements.txt"  # the copy installed; written last, so it also marks a finished install

if [ -x "$VENV/bin/python" ] && cmp -s "$ROOT/requirements.txt" "$INSTALLED"; then
  exit 0
fi
echo "install-gateway: installing requirements.txt into $VENV (a minute or two, once)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
cp "$ROOT/requirements.txt" "$INSTALLED"
