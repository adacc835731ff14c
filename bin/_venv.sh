# Sourced by bin/run and bin/test: make .venv with Python 3.11, 3.12 or 3.13 (bin/_python.sh picks it) and
# install the locked requirements when requirements.txt changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -e .venv ]; then
  # A .venv whose Python is gone (a system upgrade) or out of range would fail later, less clearly.
  if ! PYTHON=.venv/bin/python bin/_python.sh >/dev/null 2>&1; then
    echo ".venv's Python does not run or is not 3.11-3.13 ($(.venv/bin/python --version 2>&1 || true))." >&2
    echo "Remove it (rm -rf .venv) and run this again to make a new one." >&2
    exit 1
  fi
else
  PYTHON_BIN="$(bin/_python.sh)"
  echo "Creating .venv with $("$PYTHON_BIN" --version) ($PYTHON_BIN)"
  if ! "$PYTHON_BIN" -m venv .venv; then
    rm -rf .venv
    VERSION="$("$PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    echo "Could not make .venv with $PYTHON_BIN; on Debian and Ubuntu its venv module is a package of its own:" >&2
    echo "sudo apt-get install python$VERSION-venv" >&2
    exit 1
  fi
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
