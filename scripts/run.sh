#!/usr/bin/env bash
# Sets everything up and runs vton on its embedded defaults: the tiny random-weight model
# (written once to var/tiny-model) and a one-off try-on of generated demo images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=${VTON_MODEL_PATH:-var/tiny-model}
[ -d "$MODEL/unet" ] || .venv/bin/vton make-tiny-model "$MODEL"
.venv/bin/python scripts/demo_inputs.py var/demo
.venv/bin/vton tryon --model "$MODEL" \
  --person var/demo/person.png --mask var/demo/mask.png --pose var/demo/pose.png \
  --garment var/demo/garment.png --description "a red t-shirt" \
  --height 1024 --width 768 --steps 20 --out var/demo/result.png
