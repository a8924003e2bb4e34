# Two commands on a fresh machine: `make demo` and `make test` (Python 3.11 and make, nothing else).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint server worker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mipro demo

test: $(STAMP)
	@scripts/ensure_chromium.sh >/dev/null || echo "warning: no headless Chromium: the report render test will fail"
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

server: $(STAMP)
	$(BIN)/mipro server

worker: $(STAMP)
	$(BIN)/mipro worker

clean:
	rm -rf $(VENV) .mipro .pytest_cache
