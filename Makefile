# The two user commands: `make demo` and `make test`. Both create .venv and install symad into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/symad demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Differential fuzzing, long budget: FUZZ_PROGRAMS random programs (default 10000), every one
# compiled (FUZZ_COMPILE_EVERY=1), float64 and float32 (FUZZ_DTYPES). Prints programs run /
# mismatches / crashes.
FUZZ_PROGRAMS ?= 10000
FUZZ_COMPILE_EVERY ?= 1
fuzz: $(STAMP)
	FUZZ_PROGRAMS=$(FUZZ_PROGRAMS) FUZZ_COMPILE_EVERY=$(FUZZ_COMPILE_EVERY) \
		$(BIN)/python -m pytest -q -p no:cacheprovider -s tests/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

docs: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info
