#!/usr/bin/env bash
# Creates .venv with everything vton needs for development, tests and the default run.
# Idempotent: a second run only checks. torch is pinned to the CPU build on this machine's disk;
# the package itself accepts a torch range, so GPU users keep their CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[dev,s3,cluster]"
# Headless Chromium for the test page's browser tests (Debian package; Playwright drives it).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; browser tests will be skipped" >&2
  fi
fi
# Redis for the cluster mode's tests (Debian package; the tests start their own server).
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
      || echo "setup: could not install redis-server; cluster tests will be skipped" >&2
  fi
fi
# Node bullmq for the NestJS interop test (pinned in tests/cluster/node/package.json).
if command -v npm >/dev/null 2>&1; then
  npm install --no-audit --no-fund --silent --prefix tests/cluster/node \
    || echo "setup: could not install Node bullmq; the Node interop test will be skipped" >&2
fi
