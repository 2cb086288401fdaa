# ray_xt — see README.md. Every target uses the project's own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; on a GPU cluster e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
EXP ?= experiments/demo.yaml
PYTEST_ARGS ?=
# real public samples for the tests that read real text, when shared/ sits beside the checkout
export RAY_XT_SHARED_DATA ?= $(wildcard $(abspath ../shared/data))

.PHONY: install lint test test-slow test-all demo demo-quick micro micro-check plan report mlflow-ui bench bench-smoke clean \
	reproduce-phang2020 scaling-study scaling-beyond cluster-up cluster-submit cluster-report cluster-down

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m ray_xt.warmup

# ruff over the code, tests and benchmarks; mypy over the core modules (pyproject.toml lists them)
lint:
	$(BIN)/ruff check ray_xt tests bench
	$(BIN)/mypy

# Unit and integration tests on real Ray, DeepSpeed and MLflow (7-11 minutes on 2 cores).
test:
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# The slow end-to-end tests: CLI runs, resume after a killed driver, multi-node fault tests (~15 minutes).
test-slow:
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

test-all:
	$(BIN)/pytest $(PYTEST_ARGS)

demo:
	$(BIN)/ray-xt run experiments/demo.yaml

# A first look: the demo's first seed only (54 of its 162 stages, the same stage keys and storage), so a later
# `make demo` runs just the other two seeds.
demo-quick:
	$(BIN)/ray-xt run experiments/demo.yaml --seeds 0

# The paper's protocol and the scaling study: on a cluster with CLUSTER=clusters/<cloud>.yaml (ray submit runs
# the study's driver on the head node), else on this machine.
CLUSTER ?=
# on a cluster: the head's MLflow server, and study storage every node sees (the cluster files mount /mnt/shared)
CLUSTER_TRACKING ?= http://127.0.0.1:5000
CLUSTER_STORAGE ?= /mnt/shared/results
CLUSTER_RUN_OPTIONS = --tracking-uri $(CLUSTER_TRACKING) --storage $(CLUSTER_STORAGE)
define run_study
	$(if $(CLUSTER),$(BIN)/ray submit $(CLUSTER) ray_xt/cluster_entry.py -- $(1) $(CLUSTER_RUN_OPTIONS),$(BIN)/ray-xt run $(1))
endef

reproduce-phang2020:
	$(call run_study,experiments/phang2020.yaml)

scaling-study:
	$(call run_study,experiments/scaling_study.yaml)

# XLM-R large vs XL: XL trials are 4-GPU Ray Train worker groups (DeepSpeed ZeRO-3)
scaling-beyond:
	$(call run_study,experiments/scaling_beyond.yaml)

# Cluster lifecycle (CLUSTER=clusters/aws-gpu.yaml | gcp-gpu.yaml | onprem.yaml); EXP chooses the study to submit.
# Ray token authentication: the cluster files copy this machine's token (~/.ray/auth_token) to every node.
cluster-up:
	$(BIN)/ray get-auth-token --generate > /dev/null
	chmod 600 ~/.ray/auth_token
	$(BIN)/ray up -y $(CLUSTER)

cluster-submit:
	$(BIN)/ray submit $(CLUSTER) ray_xt/cluster_entry.py -- $(EXP) $(CLUSTER_RUN_OPTIONS)

# the study's report rebuilt on the head from the shared storage (also logged to the head's MLflow)
cluster-report:
	$(BIN)/ray exec $(CLUSTER) 'cd ~/ray_xt && ray-xt report $(EXP) $(CLUSTER_RUN_OPTIONS)'

# the head's MLflow server first: `ray down` stops only Ray's processes (and keeps machines of the local provider)
cluster-down:
	-$(BIN)/ray exec $(CLUSTER) '~/ray_xt/clusters/head_mlflow.sh stop'
	$(BIN)/ray down -y $(CLUSTER)

micro:
	$(BIN)/ray-xt micro build experiments/micro_check.yaml

micro-check:
	$(BIN)/ray-xt micro check experiments/micro_check.yaml

plan:
	$(BIN)/ray-xt plan $(EXP)

report:
	$(BIN)/ray-xt report $(EXP)

mlflow-ui:
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns.db --host 127.0.0.1 --port 5000

# Every benchmark at full size (results: docs/benchmarks.md); `make bench-smoke` keeps the scripts alive (CI).
bench:
	$(BIN)/python bench/orchestration_overhead.py --sweeps 2
	$(BIN)/python bench/trial_fixed_cost.py
	$(BIN)/python bench/featurisation.py
	$(BIN)/python bench/eval_throughput.py
	$(BIN)/python bench/eval_throughput.py --task xnli
	$(BIN)/python bench/first_token_cut.py
	$(BIN)/python bench/retrieval_throughput.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/train_throughput.py --task xnli
	$(BIN)/python bench/train_throughput.py --task xnli --group-by-length
	$(BIN)/python bench/compute_to_answer.py
	$(BIN)/python bench/study_scaling.py
	$(BIN)/python bench/micro_build.py
	$(BIN)/python bench/actor_worker_reuse.py

bench-smoke:
	$(BIN)/python bench/orchestration_overhead.py --smoke --sweeps 2
	$(BIN)/python bench/trial_fixed_cost.py --smoke
	$(BIN)/python bench/featurisation.py --smoke --seeds 1 --samples 2
	$(BIN)/python bench/eval_throughput.py --smoke
	$(BIN)/python bench/first_token_cut.py --smoke
	$(BIN)/python bench/retrieval_throughput.py --smoke
	$(BIN)/python bench/train_throughput.py --smoke --group-by-length
	$(BIN)/python bench/compute_to_answer.py --smoke --samples 2
	$(BIN)/python bench/study_scaling.py --smoke
	$(BIN)/python bench/actor_worker_reuse.py
	$(BIN)/python bench/gpu_throughput.py --smoke

clean:
	rm -rf results mlruns.db mlartifacts .pytest_cache
