# Two commands set up a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= $(or $(BONEBASE_HOME),.bonebase)/synth

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml to the CPU build (an open range pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The main job on embedded defaults: init, a synthetic consortium, its hospitals registered.
demo: $(STAMP)
	$(BIN)/bonebase init
	$(BIN)/bonebase synth --sites 4 --cases-per-site 100 --seed 7 --out $(DEMO) --overwrite
	$(BIN)/bonebase site import $(DEMO)/sites.json
	$(BIN)/bonebase site list

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bonebase tests benchmarks validation flows pipelines serving

bench: $(STAMP)
	$(BIN)/python benchmarks/synth.py

clean:
	rm -rf $(VENV) .bonebase .pytest_cache
