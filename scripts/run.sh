#!/usr/bin/env bash
# Sets everything up and runs the vton service on its embedded defaults: the tiny random-weight
# model (written once to var/tiny-model), a local folder store (var/store) and the in-process
# scheduler. Without VTON_JWT_SECRET the server runs in dev mode and prints a ready token and
# the test page URL; var/demo holds images to upload there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VTON_MODEL_PATH=${VTON_MODEL_PATH:-var/tiny-model}
[ -d "$VTON_MODEL_PATH/unet" ] || .venv/bin/vton make-tiny-model "$VTON_MODEL_PATH"
.venv/bin/python scripts/demo_inputs.py var/demo
exec .venv/bin/vton serve "$@"
