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

.PHONY: install lint test test-slow test-all demo demo-quick micro micro-check plan report mlflow-ui bench bench-gpu bench-smoke clean \
	reproduce-phang2020 scaling-study scaling-beyond cluster-up cluster-submit cluster-status cluster-logs \
	cluster-stop cluster-report cluster-down check-torch

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	$(MAKE) --no-print-directory check-torch
	$(BIN)/python -m ray_xt.warmup

# A TORCH_SPEC that names a CUDA index must have installed a CUDA build (ray_xt/torch_check.py says why)
check-torch:
	$(BIN)/python -m ray_xt.torch_check "$(TORCH_SPEC)"

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

# The paper's protocol and the scaling study: on a cluster with CLUSTER=clusters/<cloud>.yaml (the study's driver
# becomes a Ray job on the head: `ray submit` of cluster_entry.py submits it and follows its log; leaving, or a
# dropped connection, ends only the following), else on this machine.
CLUSTER ?=
# on a cluster: the head's MLflow server, and study storage every node sees (the cluster files mount /mnt/shared)
CLUSTER_TRACKING ?= http://127.0.0.1:5000
CLUSTER_STORAGE ?= /mnt/shared/results
CLUSTER_STUDY_OPTIONS = --tracking-uri $(CLUSTER_TRACKING) --storage $(CLUSTER_STORAGE)
# more `ray-xt run` options for the study's job, e.g. RUN_OPTIONS="--seeds 0 --set trial.epochs=2"; the report
# takes the run's --set options again: REPORT_OPTIONS="--set trial.epochs=2"
RUN_OPTIONS ?=
REPORT_OPTIONS ?=
CLUSTER_RUN_OPTIONS = $(CLUSTER_STUDY_OPTIONS) $(RUN_OPTIONS)
# ray-xt on the head (the cluster files put the checkout at ~/ray-xt; the job server wants the cluster's token)
ON_HEAD = RAY_AUTH_MODE=token ~/ray-xt/.venv/bin/ray-xt
define run_study
	$(if $(CLUSTER),$(BIN)/ray submit $(CLUSTER) ray_xt/cluster_entry.py -- submit $(1) $(CLUSTER_RUN_OPTIONS),$(BIN)/ray-xt run $(1))
endef

reproduce-phang2020:
	$(call run_study,experiments/phang2020.yaml)

scaling-study:
	$(call run_study,experiments/scaling_study.yaml)

# XLM-R large vs XL: XL trials are 4-GPU Ray Train worker groups (DeepSpeed ZeRO-3)
scaling-beyond:
	$(call run_study,experiments/scaling_beyond.yaml)

# Cluster lifecycle (CLUSTER=clusters/aws-gpu.yaml | gcp-gpu.yaml | onprem.yaml); EXP chooses the study to submit.
# Ray token authentication: the cluster files copy this machine's token (~/.ray/auth_token) to every node, and the
# head's MLflow login (~/.ray_xt/mlflow_credentials, user:password, made here once if missing).
# A cluster that runs a study is not brought up again (that restarts Ray): the refusal names the study;
# NO_RESTART=1 updates the nodes without restarting Ray (ray up --no-restart).
cluster-up:
	$(BIN)/ray get-auth-token --generate > /dev/null
	chmod 600 ~/.ray/auth_token
	@mkdir -p ~/.ray_xt && chmod 700 ~/.ray_xt && [ -s ~/.ray_xt/mlflow_credentials ] || \
	  (umask 077 && echo "admin:$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(18))')" > ~/.ray_xt/mlflow_credentials)
	@running="$$($(BIN)/ray exec $(CLUSTER) '$(ON_HEAD) cluster guard' 2>/dev/null | grep '^ray-xt guard:')"; \
	if [ -n "$$running" ] && [ -z "$(NO_RESTART)" ]; then echo "$$running" | sed 's/^ray-xt guard: //' >&2; exit 1; fi
	$(BIN)/ray up -y $(if $(NO_RESTART),--no-restart) $(CLUSTER)

cluster-submit:
	$(BIN)/ray submit $(CLUSTER) ray_xt/cluster_entry.py -- submit $(EXP) $(CLUSTER_RUN_OPTIONS)

# what runs on the cluster (each study's job, its latest progress line); JOB= a job id or study name
cluster-status:
	$(BIN)/ray exec $(CLUSTER) '$(ON_HEAD) cluster status'

cluster-logs:
	$(BIN)/ray exec $(CLUSTER) '$(ON_HEAD) cluster logs $(JOB)'

cluster-stop:
	$(BIN)/ray exec $(CLUSTER) '$(ON_HEAD) cluster stop $(JOB)'

# the study's report rebuilt on the head from the shared storage (also logged to the head's MLflow)
cluster-report:
	$(BIN)/ray exec $(CLUSTER) 'cd ~/ray-xt && $(ON_HEAD) report $(EXP) $(CLUSTER_STUDY_OPTIONS) $(REPORT_OPTIONS)'

# the head's MLflow server first: `ray down` stops only Ray's processes (and keeps machines of the local provider)
cluster-down:
	-$(BIN)/ray exec $(CLUSTER) '~/ray-xt/clusters/head_mlflow.sh stop'
	$(BIN)/ray down -y $(CLUSTER)

micro:
	$(BIN)/ray-xt micro build experiments/micro_check.yaml

micro-check:
	$(BIN)/ray-xt micro check experiments/micro_check.yaml

plan:
	$(BIN)/ray-xt plan $(EXP)

report:
	$(BIN)/ray-xt report $(EXP)

# prints each study's runs-table address (the Model-training view with ray_xt's columns), then serves the UI
mlflow-ui:
	$(BIN)/python -m ray_xt.mlflow_view sqlite:///mlruns.db http://127.0.0.1:5000
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
	$(BIN)/python bench/bucc_mining.py

# On a GPU node (a GPU torch build: TORCH_SPEC in `make install`): one trial's throughput at XLM-R geometry, ray_xt's
# loop vs a plain HF Trainer, each side in its own process, MFU from the device's peak (docs/benchmarks.md)
bench-gpu:
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench-gpu needs a CUDA GPU and a CUDA torch build')"
	$(BIN)/python bench/gpu_throughput.py --scale base --seq-len 256 --batch-size 32
	$(BIN)/python bench/gpu_throughput.py --scale large --seq-len 384 --batch-size 16
	$(BIN)/python bench/gpu_throughput.py --scale xl --seq-len 256 --batch-size 8

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
	$(BIN)/python bench/bucc_mining.py --smoke

clean:
	rm -rf results mlruns.db mlartifacts .pytest_cache
