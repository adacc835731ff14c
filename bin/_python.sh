#!/usr/bin/env bash
# Prints the path of the Python that bin/_venv.sh makes .venv with: $PYTHON when it is set, else the first
# of python3.11, python3.12, python3.13 and python3 that runs and is 3.11, 3.12 or 3.13, the versions
# pyproject.toml's requires-python admits and requirements.txt is checked against (3.11 first: CI and the
# Docker image run it). Anything else is refused, naming what was found.
set -euo pipefail
SUPPORTED=(3.11 3.12 3.13)
if [ -n "${PYTHON:-}" ]; then
  candidates=("$PYTHON")
else
  candidates=(python3.11 python3.12 python3.13 python3)
fi
found=()
for candidate in "${candidates[@]}"; do
  if ! path="$(command -v "$candidate" 2>/dev/null)"; then
    [ -n "${PYTHON:-}" ] && found+=("$candidate (not found)")
    continue
  fi
  # A pyenv shim for a version that is not selected, or a dangling link, exits non-zero here.
  if ! version="$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"; then
    found+=("$candidate (does not run)")
    continue
  fi
  for supported in "${SUPPORTED[@]}"; do
    if [ "$version" = "$supported" ]; then
      echo "$path"
      exit 0
    fi
  done
  found+=("$candidate ($version)")
done
if [ ${#found[@]} -eq 0 ]; then
  found=("no python3 on PATH")
fi
printf -v list '%s, ' "${found[@]}"
{
  echo "TransferLab needs Python 3.11, 3.12 or 3.13; found: ${list%, }."
  echo "Install one (Ubuntu 24.04 and Debian 12/13: sudo apt-get install python3 python3-venv),"
  echo "or point PYTHON at one: PYTHON=/path/to/python3.12 ./bin/run"
} >&2
exit 1
