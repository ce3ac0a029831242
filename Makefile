# Every target creates the virtualenv on first use, so a fresh clone needs nothing but Python >= 3.10.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A CPU build of torch: small and fast to install on machines without a GPU (pip finds a local wheel here).
TORCH  ?= torch==2.13.0

.PHONY: install demo rank test test-all lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,ray,cmaes,nb201,nb101,parquet]"
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: an Optuna (TPE) search over NAS-Bench-201 cells, filtered
## before training by [C22]'s box; each kept cell is trained as a CNN (conv cells as conv nets) on the
## bundled digits for 10 epochs with its own principled init and LR and scored on the validation
## split; the best 3 cells are retrained with 3 seeds and tested once. About a minute of CPU on
## 2 cores (see README); rerunning resumes the study (and only reports once it is complete).
demo: $(STAMP)
	$(BIN)/nasplug search --space nb201 --n-trials 30 --epochs 10 --out results/search

## Score all 15,625 NAS-Bench-201 cells without training (seconds, no data needed).
rank: $(STAMP)
	$(BIN)/nasplug rank --space nb201 --out results/nb201-rank

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache
