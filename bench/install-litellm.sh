#!/usr/bin/env bash
# Install the LiteLLM proxy into its own virtual environment (bench/.venv-litellm), for the
# comparison in `make bench`. Idempotent: does nothing when the `litellm` CLI is already there.
# LITELLM_SPEC pins another version, e.g. LITELLM_SPEC='litellm[proxy]==1.74.0'.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-litellm"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
SPEC="${LITELLM_SPEC:-litellm[proxy]}"

if [ -x "$VENV/bin/litellm" ]; then
  exit 0
fi
echo "install-litellm: installing '$SPEC' into $VENV (a few minutes, once)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$SPEC"
"$VENV/bin/litellm" --version >/dev/null 2>&1 || true
echo "install-litellm: $("$VENV/bin/python" -m pip show litellm | grep -i '^version')"
