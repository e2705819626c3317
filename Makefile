# Two commands set up a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench i18n clean

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

## Chinese and English (#25): extract the messages of the web pages (domain web) and of receipts,
## quarantine reasons and CLI messages (domain bonebase), update the .po catalogues, compile .mo.
## Translate the new msgids in bonebase/locale/zh_Hans/LC_MESSAGES/*.po, then run it again.
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k t:2 --sort-output --project bonebase -o bonebase/locale/web.pot web
	$(BIN)/pybabel update -i bonebase/locale/web.pot -d bonebase/locale -D web --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel extract -F babel.cfg --sort-output --project bonebase -o bonebase/locale/bonebase.pot bonebase flows validation
	$(BIN)/pybabel update -i bonebase/locale/bonebase.pot -d bonebase/locale -D bonebase --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d bonebase/locale -D web --statistics
	$(BIN)/pybabel compile -d bonebase/locale -D bonebase --statistics

clean:
	rm -rf $(VENV) .bonebase .pytest_cache
