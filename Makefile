# Juxing: README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
ASSETS := src/juxing/web/static/vendor/.built

.PHONY: install assets browser demo test test-slow test-all test-faults lint typecheck migration clean \
        bench-dashboards bench-feed bench-ledger bench-search bench-live bench-flash-sale \
        bench-scaleout bench-recsys

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

# The web UI's htmx and Chart.js, from the npm registry at build time (pinned lockfile).
$(ASSETS): src/juxing/web/assets/package-lock.json scripts/build_assets.sh
	bash scripts/build_assets.sh

assets: $(ASSETS)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk)

install: $(STAMP) $(ASSETS)

demo: install
	$(VENV)/bin/juxing demo

# Everything but the suites marked slow (those run in CI through test-slow).
test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install browser
	$(PY) -m pytest -q -m slow; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-all: install browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

# Rewrite the initial migration from the models (allowed until the first release).
migration: install
	$(PY) -m juxing.kit.migrate
	$(VENV)/bin/ruff check --quiet --fix --select I src/juxing/migrations/versions; $(VENV)/bin/ruff format --quiet src/juxing/migrations/versions

# issue 7: dashboard p95 over 1M orders / 10M events (PostgreSQL + SQLite); see docs/analytics.md
bench-dashboards: install
	$(PY) benchmarks/dashboards.py

# Feed serving benchmark (issue 5); the generated world is cached in var/bench-feed.
bench-feed: install
	$(PY) benchmarks/feed.py

# issue 6: attribution + ledger posting for 1M orders (SQLite and PostgreSQL), then ledger check.
bench-ledger: install
	$(PY) benchmarks/ledger.py

# issue 5: recommendation quality on ../shared/data/amazon-beauty (leave-one-out, full ranking),
# our model vs popularity / item-kNN / implicit-ALS, traffic policy off and on; see docs/recsys.md
bench-recsys: install
	$(PY) benchmarks/recsys_quality.py --repeats 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Search over 100,000 posts (issue 4): SQLite, and PostgreSQL when JUXING_BENCH_PG_URL is set.
bench-search: install
	$(PY) benchmarks/search.py

# Live room (issue 4): 1,000 SSE viewers receive a pin change; Redis fan-out if JUXING_BENCH_REDIS_URL.
bench-live: install
	$(PY) benchmarks/live.py

# issue 9: fault injection on the production profile (2 API processes + worker on PostgreSQL +
# a private Redis, SIGKILLed at seeded moments); JUXING_FAULTS_SEED/RUNS/SECONDS; see docs/reliability.md
test-faults: install
	$(PY) benchmarks/faults.py

# Flash-sale benchmark (issue 3): one hot deal item over HTTP on SQLite, PostgreSQL, Redis.
bench-flash-sale: install
	$(PY) benchmarks/flash_sale.py

# issue 9: per-node basis for docs/scaling.md (orders, clicks, feed on 1 vs 2 API processes, PG + Redis)
bench-scaleout: install
	$(PY) benchmarks/faults_scaleout.py
