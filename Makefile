# Two commands do all set-up on a fresh machine:
#   make app    create .venv, install VeinScope, start the app on http://127.0.0.1:8501 (demo patient loaded)
#   make test   create .venv, install VeinScope with its test tools, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: app test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

# one malloc arena: Streamlit analyses in its script threads, whose own arenas would hand every
# image-sized array fresh pages (about 1 s per 12 MP photo; see veinscope/_memory.py)
app: $(STAMP)
	MALLOC_ARENA_MAX=1 $(BIN)/streamlit run app.py

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache
