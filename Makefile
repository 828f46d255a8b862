# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing and installs
# once (a stamp file records it; editing pyproject.toml or constraints.txt reinstalls).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/demo
STEPS  ?= 600

.PHONY: install test demo lint bench bench-dowhy gpu-check clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU build of torch goes in first: a plain "torch" requirement would pull a multi-GB CUDA build.
# constraints.txt pins the versions this project is tested with; pyproject.toml keeps ranges for users.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,causal]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/probrep demo --out $(OUT) --steps $(STEPS)

# ruff, and the layering contracts of pyproject.toml ([tool.importlinter]): models never import inference, data
# never imports models, nothing imports the CLI.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The quick side-by-side benchmarks; the long ones (posteriordb, AIR accuracy, GQN small tier, 100k MMD) are
# run one by one from benchmarks/. Comparisons against BlackJAX, POT and geomloss need `pip install -e '.[bench]'`.
bench: $(STAMP)
	$(BIN)/python benchmarks/vae_step.py
	$(BIN)/python benchmarks/scm_sampling.py
	$(BIN)/python benchmarks/score_matching_cost.py
	$(BIN)/python benchmarks/mcmc_nuts.py
	$(BIN)/python benchmarks/air_step.py
	$(BIN)/python benchmarks/tc_estimator.py

# probrep's SCM.from_graph beside DoWhy's gcm. dowhy 0.14 needs scipy<=1.15.3, below constraints.txt's pin, so it
# gets its own environment (.venv-dowhy, versions in constraints-dowhy.txt) and never touches .venv; the benchmark
# runs its gcm half there on the same data.
DOWHY_VENV  := .venv-dowhy
DOWHY_STAMP := $(DOWHY_VENV)/.installed

$(DOWHY_STAMP): constraints-dowhy.txt
	$(PYTHON) -m venv $(DOWHY_VENV)
	$(DOWHY_VENV)/bin/python -m pip install --quiet -c constraints-dowhy.txt dowhy==0.14
	touch $(DOWHY_STAMP)

bench-dowhy: $(STAMP) $(DOWHY_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/causal_dowhy.py --dowhy-python $(DOWHY_VENV)/bin/python

# On a machine with a CUDA GPU: the test suite on cuda and the quick benchmarks, report in runs/gpu_check/.
# Without a GPU it says so and exits 0.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) $(DOWHY_VENV) runs
