# Sourced by bin/run and bin/test: make .venv with Python 3.11 and install the locked requirements
# when requirements.txt changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "TransferLab needs Python 3.11 (found $("$PYTHON_BIN" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON_BIN" --version)"
  "$PYTHON_BIN" -m venv .venv
fi
STAMP=".venv/.requirements.sha256"
WANT="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "Installing locked requirements (first run downloads TensorFlow: a few minutes)"
  mkdir -p var
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -r requirements.txt; } \
      > var/pip-install.log 2>&1; then
    tail -40 var/pip-install.log >&2
    echo "pip install failed; the whole log is in var/pip-install.log" >&2
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
