# `make test` and `make demo` work on a fresh clone with nothing but Python 3.11 installed:
# each creates .venv when it is missing and installs every package of the repository (editable) first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PACKAGES := packages/imbalance packages/mtl_distill packages/affect_data

.PHONY: test demo lint install clean-venv

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet \
		-e "packages/imbalance[plot,torch,pandas,sparse]" \
		-e "packages/mtl_distill[progress,plot]" \
		-e "packages/affect_data[video,plot]" \
		--group dev --group emotion
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) examples/emotion/run.py all --config examples/emotion/configs/demo.yaml

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean-venv:
	rm -rf $(VENV)
