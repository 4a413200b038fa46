#!/usr/bin/env bash
# Sets up .venv-demo (TensorFlow backend, offline EfficientNet-Lite weights, scikit-image/-learn) and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv-demo/bin/python ] || "$PYTHON" -m venv .venv-demo
.venv-demo/bin/python -m pip install --quiet --disable-pip-version-check -e ".[tf,demo]"
exec .venv-demo/bin/transferkit demo "$@"
