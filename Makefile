# Single entry point. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1

.PHONY: venv install install-test demo test lint typecheck docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch and torchvision are pinned in pyproject.toml and installed in one resolve
install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"

demo: install
	mkdir -p out
	$(BIN)/galaxalign-astro classify galaxalign_astro/data/samples --model default \
		-o out/samples.fits --overwrite

test: install-test
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check galaxalign_astro tests benchmarks
	$(BIN)/ruff format --check galaxalign_astro tests benchmarks
	$(BIN)/mypy galaxalign_astro

lint: install-test
	$(BIN)/ruff check galaxalign_astro tests benchmarks
	$(BIN)/mypy galaxalign_astro

docs: install
	$(BIN)/python docs/generate.py

clean:
	rm -rf $(VENV) out build *.egg-info
