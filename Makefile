.PHONY: setup run test lint bench-gpu

setup:
	bash scripts/setup.sh

run:
	bash scripts/run.sh

test: setup
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
