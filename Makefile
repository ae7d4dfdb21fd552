# Two commands do all set-up on a fresh machine:
#   make app    create .venv, install VeinScope, analyse a sample photo (the app arrives later)
#   make test   create .venv, install VeinScope with its test tools, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: app test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

app: $(STAMP)
	$(BIN)/veinscope analyze sample_images/demo_leg.jpg --px-per-mm 10 --out out/demo
	@echo "Open out/demo/overlay.png to see what was found; figures are in out/demo/analysis.json"

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache
