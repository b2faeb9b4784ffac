.PHONY: setup run test lint bench-gpu

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/vton serve

test: setup
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
