#!/usr/bin/env bash
# Set up a virtualenv, build crmkit (Rust extension included), install the
# first-party plugins and run every check and test. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

# Headless Chromium for the HTML report tests (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium is not installed: the browser tests of the HTML report will be skipped" >&2
    fi
fi

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
