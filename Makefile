# One entry point per task; every target builds .venv from pyproject.toml first.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
export ML_ASSETS_HOME ?= $(CURDIR)

.PHONY: install demo test lint ui serve screenshots bench bench-scale bench-grow bench-quality bench-imbalance bench-serving \
  services services-down test-services clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "ml_assets needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
	$(BIN)/pip install --quiet -e '.[dev]' 2>&1 | { grep -v "is ignored" || true; }
	$(BIN)/python -c 'import ml_assets, dagster, great_expectations, lightgbm, prophet, mlflow'
	touch $(STAMP)

install: $(STAMP)

# The instance (deploy/local/dagster.yaml: run monitoring, one training run per spec at a
# time), its storage created here, once, before any run (two runs starting together on a
# fresh instance would both try to create it).
# Made only when missing: a DAGSTER_HOME of the services (.services/env.sh) keeps its own.
$(DAGSTER_HOME)/dagster.yaml: | deploy/local/dagster.yaml $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $@.tmp
	mv $@.tmp $@
	$(BIN)/python -c 'import dagster; dagster.DagsterInstance.get().get_runs(limit=1)'

# Train every spec (churn on the first 14 days of its stream), then let 16 more churn days
# arrive with drift from day 20: the arrival and retraining sensors, scoring, drift reports and
# the weekly schedule run for real against the same Dagster instance and MLflow registry. Then
# a drill: the champion is rolled back, the version rolled back from kept as the challenger,
# and 6 more days arrive, on which it is scored in the champion's shadow and, once its paired
# improvement is above 0 after the spec's shadow_days, promoted again. The stream starts 36
# days ago, so its last day is yesterday and today's file
# (`python -m ml_assets.cli stream --next`) is left for the daemon under `make ui`.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m ml_assets.cli stream --days 14 --drift-day 20 --restart
	status=0; $(BIN)/dagster job execute -m ml_assets.definitions -j train_all || status=$$?; \
	  echo; echo "=== churn: days 14-29 arrive, drift from day 20 (logs: $(DAGSTER_HOME)/simulate.log) ==="; \
	  $(BIN)/python -m ml_assets.cli simulate --from-day 14 --to-day 30 --drift-day 20 \
	    2> $(DAGSTER_HOME)/simulate.log || { status=$$?; tail -n 20 $(DAGSTER_HOME)/simulate.log; }; \
	  echo; echo "=== churn drill: roll back, keep the newer version in the shadow, days 30-35 arrive ==="; \
	  $(BIN)/python -m ml_assets.cli rollback churn --who "make demo" --keep-as-challenger \
	    --reason "drill: go back one version and let the shadow prove the newer one" \
	    2>> $(DAGSTER_HOME)/simulate.log || status=$$?; \
	  $(BIN)/python -m ml_assets.cli simulate --from-day 30 --to-day 36 --drift-day 20 --no-weekly \
	    2>> $(DAGSTER_HOME)/simulate.log || { status=$$?; tail -n 20 $(DAGSTER_HOME)/simulate.log; }; \
	  echo; echo "=== ml_assets summary ==="; $(BIN)/python -m ml_assets.cli summary; exit $$status

# One pytest worker per core (pytest-xdist): the daemon and job tests mostly wait on
# subprocesses, so two workers on two cores take ~6 minutes instead of ~10.
test: $(STAMP)
	$(BIN)/pytest -n auto --durations=15

# The local service stack (deploy/services.py): PostgreSQL and Redis from Debian packages
# (installed with apt-get when missing), an MLflow tracking server on PostgreSQL with artifacts
# in S3, moto's S3 server; all on 127.0.0.1, files under .services/. `source .services/env.sh`
# points the project's commands at them (deploy/README.md).
SERVICES_STAMP := $(VENV)/.services-stamp
$(SERVICES_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,services]' 2>&1 | { grep -v "is ignored" || true; }
	touch $(SERVICES_STAMP)

services: $(SERVICES_STAMP)
	$(BIN)/python deploy/services.py up

services-down:
	$(PYTHON) deploy/services.py down

# Integration tests against that stack (ml_assets_tests/services), one at a time: they share
# its registry and buckets.
test-services: $(SERVICES_STAMP)
	set -a; source .services/env.sh; set +a; ML_ASSETS_TEST_SERVICES=1 $(BIN)/pytest ml_assets_tests/services --durations=0

lint: $(STAMP)
	$(BIN)/ruff check ml_assets ml_assets_tests bench docs deploy

# Scoring throughput: the model wrapper and pyfunc on 200,000 rows, then one daily partition of
# SCORE_ROWS rows scored through the champion alias by the real predictions asset: with churn's
# searched champion, and with a larger fixed-setting one (learning rate 0.02, up to 300 trees)
SCORE_ROWS ?= 10000000
bench: $(STAMP)
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/partition_scoring.py --rows $(SCORE_ROWS)
	$(BIN)/python bench/partition_scoring.py --rows $(SCORE_ROWS) --learning-rate 0.02 --rounds 300

# The whole train job on N synthetic rows against a hand-written LightGBM script (bench/scale.py)
N ?= 1000000
BUDGET ?= 1
REPEATS ?= 3
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py --rows $(N) --budget $(BUDGET) --repeats $(REPEATS)

# A spec trained on 200,000 rows, then on 1,000,000 of the same distribution holding a value
# in a million outside the learned ranges: the retraining passes with a warning.
bench-grow: $(STAMP)
	$(BIN)/python bench/grow.py

# Every built-in spec trained by the real job, its test metric next to plain references on the
# same split: a fixed-setting LightGBM (tabular), Holt-Winters and seasonal naive (forecasts).
bench-imbalance: $(STAMP)
	$(BIN)/python bench/imbalance.py

# The champion served by `make serve`: single-row p50/p99 over 1,000 sequential requests and
# rows/s in 1,000-row batches (bench/serving.py)
bench-serving: $(STAMP)
	$(BIN)/python bench/serving.py

bench-quality: $(STAMP)
	$(BIN)/python bench/quality.py

# MLflow's UI with one worker and without its GenAI job runner (huey consumers), which model
# training does not use: 2 processes and ~0.5 GB instead of 15 and ~3 GB idle.
MLFLOW_UI := MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
  --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000 --workers 1
DAGSTER_UI := $(BIN)/dagster dev -m ml_assets.definitions -h 127.0.0.1 -p 3000
# With an MLflow server (MLFLOW_TRACKING_URI=http://...), that server is the MLflow UI.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	if [[ "$(MLFLOW_TRACKING_URI)" == http* ]]; then $(DAGSTER_UI); else \
	  $(MLFLOW_UI) & mlflow_pid=$$!; trap "kill $$mlflow_pid" EXIT INT TERM; $(DAGSTER_UI); fi

# The champion of SPEC served online by MLflow's scoring server on 127.0.0.1:PORT: POST
# /invocations ({"dataframe_records": [...]}, answers {"predictions": [...]}), GET /ping and
# /health. uvicorn is looked up on PATH, hence the venv's bin there.
SPEC ?= affairs
PORT ?= 5001
serve: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow models serve -m "models:/$(SPEC)@champion" \
	  --env-manager local --host 127.0.0.1 --port $(PORT)

# PNGs of both UIs after `make demo`, under docs/screenshots/ (shown in the README): Debian's
# Chromium driven headless by Playwright (docs/screenshots.py), against the UIs `make ui` runs,
# started (and stopped) by the script unless they already answer.
screenshots: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	command -v chromium > /dev/null || { echo "needs Debian's Chromium: apt-get install -y chromium"; exit 1; }
	$(BIN)/python -c 'import playwright' 2> /dev/null || $(BIN)/pip install --quiet -e '.[screenshots]'
	$(BIN)/python docs/screenshots.py

clean: services-down
	rm -rf $(VENV) .dagster_home .bench .services mlflow.db mlartifacts data/*/
