# Two set-up commands (see README): `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= runs/bert_tiny_pydocs
PYTEST_ARGS ?=

.PHONY: demo test test-faults install clean-venv bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Editable install with the test extras, pinned to constraints.txt so it is reproducible.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' -c constraints.txt
	touch $@

# torch + transformers for the HuggingFace parity tests: only `make test` needs them.
HF_STAMP := $(VENV)/.installed-hf
$(HF_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,hf]' -c constraints.txt
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/prelm train --config experiments/bert_tiny_pydocs.py --workdir $(WORKDIR)

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(HF_STAMP)
	@$(BIN)/python -m pytest -q --durations=25 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# The long fault-injection run: 20 SIGKILLs at random times over one training run, each
# followed by a resume, plus the SIGTERM test (tests/test_faults.py; ~10-15 min on 2 cores).
# `make test` runs the short version (3 kills). PRELM_FAULT_SEED picks other kill times.
test-faults: $(STAMP)
	PRELM_FAULT_KILLS=$${PRELM_FAULT_KILLS:-20} $(BIN)/python -m pytest -q -s -m faults tests/test_faults.py

clean-venv:
	rm -rf $(VENV)

# The train step of prelm_jax vs HuggingFace FlaxBertForPreTraining and PyTorch
# BertForPreTraining on this machine's CPU (benchmarks/train_step.py; the HF-Flax peer's
# venv, benchmarks/.venv-hf-flax, is made on first use). Run it on an idle machine.
# BENCH_ARGS, e.g. "--configs bert_small --batch 8 --steps 2", shrinks it.
BENCH_ARGS ?=
bench: $(HF_STAMP)
	$(BIN)/python benchmarks/train_step.py --out benchmarks/results/cpu.json $(BENCH_ARGS)
