# Two commands set up a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml to the CPU build (an open range pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The main job on embedded defaults, the whole consortium story (bonebase demo --help):
## 4 synthetic hospitals ingested (faults quarantined, receipts), a dataset version, training
## and evaluation, a named approval, BentoML deployment and a diagnosis over HTTP, a fifth
## hospital, a retrain and the candidate compared with the champion. Re-running is safe.
demo: $(STAMP)
	$(BIN)/bonebase demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bonebase tests benchmarks validation flows pipelines serving

bench: $(STAMP)
	$(BIN)/python benchmarks/synth.py

clean:
	rm -rf $(VENV) .bonebase .pytest_cache
