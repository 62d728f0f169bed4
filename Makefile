# The two set-up commands of the README: `make serve` and `make test`.
# Each installs what it needs itself, so a fresh Debian machine with Python 3.11 is enough.

# Debian's own python3.11 when there is one: it is built with PGO and LTO and links libpython
# statically, and lamina's warm invoke path costs ~20% less server CPU on it than on a default
# source build such as pyenv's (README, Performance). Any other python3.11 works too.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3.11)
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_TEST_PACKAGES := curl ca-certificates wrk util-linux

.PHONY: serve test lint bench bench-quick clean debian-test-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || (apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

debian-test-packages:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	@command -v node >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs)

serve: $(VENV)/.installed
	$(BIN)/lamina serve

test: $(VENV)/.installed-test debian-test-packages
	$(BIN)/ruff check lamina tests bench
	$(BIN)/python -m pytest -q
	$(BIN)/python -m bench --quick --json bench/results/quick.json

lint: $(VENV)/.installed-test
	$(BIN)/ruff check lamina tests bench

bench: $(VENV)/.installed-test debian-test-packages
	$(BIN)/python -m bench

bench-quick: $(VENV)/.installed-test debian-test-packages
	$(BIN)/python -m bench --quick --json bench/results/quick.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
