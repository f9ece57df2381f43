#!/usr/bin/env bash
# Set up a virtualenv, build crmkit and run the quickstart workflow on the
# embedded default (a SQLite file, the local engine) in ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q -U pip
pip install -q -e .

crmkit init demo --force
cd demo
crmkit run workflow.toml
