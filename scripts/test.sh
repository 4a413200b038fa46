#!/usr/bin/env bash
# Sets up .venv-test and runs the test suite. `--quick` first: the everyday tier. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv-test/bin/python ] || "$PYTHON" -m venv .venv-test
PIP=(.venv-test/bin/python -m pip install --quiet --disable-pip-version-check)
# --quick: the everyday tier (tests not marked slow), with only what those tests need: TensorFlow, the demo's
# packages, search, audit and serve. Everything else is for the full suite, which CI runs.
if [ "${1:-}" = "--quick" ]; then
  shift
  "${PIP[@]}" -e ".[tf,demo,test-quick]"
  exec .venv-test/bin/python -m pytest -m "not slow" "$@"
fi
# PyTorch 2.13.0 (CPU) is the test-only reference for EfficientNet-Lite and the non-default-backend smoke test.
# Install it first and by exact version, so nothing else pulls a CUDA build.
"${PIP[@]}" "torch==2.13.0" || echo "note: torch==2.13.0 not installable here; its reference tests will be skipped"
"${PIP[@]}" -e ".[tf,demo,test,ray,jax]"
if .venv-test/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" --no-deps "efficientnet-lite-pytorch==0.1.0"
fi
# A real browser renders the HTML pages transferkit writes (explore.html); the one test that needs it says
# why it skips where this cannot install it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 &&
    apt-get install -y -qq chromium >/dev/null 2>&1)) || echo "note: chromium not installable; the browser test will skip"
fi
exec .venv-test/bin/python -m pytest "$@"
