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

## The main job on embedded defaults: init, a synthetic consortium, its hospitals registered,
## each hospital's submission ingested (receipts printed; re-running changes nothing).
demo: $(STAMP)
	$(BIN)/bonebase init
	test -f $(DEMO)/sites.json || $(BIN)/bonebase synth --sites 4 --cases-per-site 100 --seed 7 --out $(DEMO) --overwrite
	$(BIN)/bonebase site import $(DEMO)/sites.json
	for code in $$($(BIN)/python -c "import json,sys; print(' '.join(s['code'] for s in json.load(open(sys.argv[1]))))" $(DEMO)/sites.json); do \
	  $(BIN)/bonebase submit $(DEMO)/$$code/submission --site $$code || exit 1; \
	done
	$(BIN)/bonebase submissions list

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bonebase tests benchmarks validation flows pipelines serving

bench: $(STAMP)
	$(BIN)/python benchmarks/synth.py

clean:
	rm -rf $(VENV) .bonebase .pytest_cache
