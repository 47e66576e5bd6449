#!/usr/bin/env bash
# Installs PyTorch into ./.venv for the Python client's worked example
# (clients/python/examples/byom_guided_finetune.py). Not run by CI; the tests skip the PyTorch
# example when `python3 -c 'import torch'` fails in the interpreter they use.
#   scripts/setup-torch.sh && METRICOPT_PYTHON=.venv/bin/python npx vitest run test/byom/torch-example.e2e.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -c 'import torch; print("torch", torch.__version__)'
