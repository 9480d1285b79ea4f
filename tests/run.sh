#!/usr/bin/env bash
# The full test suite on a fresh machine: installs what the tests need (a virtual environment with the test
# and calibrate extras, and Debian's Chromium for the browser test; Playwright cannot download its own browser here),
# then runs every test, notebooks and the browser test included.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[app,test,calibrate]"
.venv/bin/python -m pytest -n auto -q "$@"
