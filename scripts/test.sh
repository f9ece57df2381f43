#!/usr/bin/env bash
# Set up a virtualenv, build crmkit (Rust extension included), install the
# first-party plugins and run every check and test. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q -U pip
pip install -q -e ".[test]"
for p in plugins/*/; do
    [ -f "$p/pyproject.toml" ] && pip install -q -e "$p"
done

echo "== cargo fmt / clippy / test"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test -p crmkit-core --locked

echo "== ruff / mypy"
ruff check python tests benches plugins examples
ruff format --check python tests benches plugins examples
mypy
python -m mypy.stubtest crmkit._core --allowlist .ci/stubtest-allowlist.txt

echo "== pytest"
pytest "$@"
