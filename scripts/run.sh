#!/usr/bin/env bash
# Sets everything up and runs the vton service on its embedded defaults: the tiny random-weight
# model with stand-ins of the person preprocessing weights (written once to var/tiny-model and
# var/tiny-model/ckpt), a local folder store (var/store) and the in-process scheduler. Without
# VTON_JWT_SECRET the server runs in dev mode and prints a ready token and the test page URL;
# var/demo holds images to upload there (var/demo/person.png registers from the photo alone).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VTON_MODEL_PATH=${VTON_MODEL_PATH:-var/tiny-model}
if [ ! -d "$VTON_MODEL_PATH/unet" ]; then
  .venv/bin/vton make-tiny-model "$VTON_MODEL_PATH"
elif [ "$VTON_MODEL_PATH" = var/tiny-model ] \
  && { [ ! -d var/tiny-model/ckpt ] || [ ! -f var/tiny-model/vton-tiny-model.json ]; }; then
  .venv/bin/vton make-tiny-model var/tiny-model  # made before the stand-ins or its own frame
fi
.venv/bin/python scripts/demo_inputs.py var/demo
exec .venv/bin/vton serve "$@"
