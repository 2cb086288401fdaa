"""What a trial imports, imported once when a trainer host starts (``ray_xt.trainer_hosts``).

``import transformers`` and ``import deepspeed`` are lazy: the expensive parts load on first use. Profiled on
2 cores (docs/benchmarks.md, "Per-trial fixed cost"): the XLM-R model module (transformers' model-loading
stack, 2.3 s) and DeepSpeed's ZeRO optimizer check, which imports its Muon optimizer and with it
``torch._dynamo`` (1.5 s). A trainer host imports them all before its first run, so every trial it runs starts
with them loaded. (They used to be Ray's ``preload_python_modules``; but every new worker pays a preload, and
Tune starts new trial actors for every sweep.)

Best effort: a module missing in another transformers/DeepSpeed version costs speed, never a failure.
"""

from __future__ import annotations

import importlib

from ray_xt.process_env import choose_deepspeed_accelerator

MODULES = (
    "torch",
    "torch._dynamo",
    "transformers",
    "transformers.models.xlm_roberta.modeling_xlm_roberta",
    "transformers.models.xlm_roberta_xl.modeling_xlm_roberta_xl",
    "deepspeed",
    "deepspeed.runtime.engine",
    "deepspeed.runtime.zero.muon.muon_optimizer",
    "ray_xt.loop",
    "ray_xt.families",
    # cached features (datasets, Arrow) and the SentencePiece tokenizer stack, which a host's first trial loaded
    # itself otherwise (docs/benchmarks.md, "Per-trial fixed cost")
    "ray_xt.data",
    "datasets",
    "sentencepiece",
    "transformers.tokenization_utils_tokenizers",
    "transformers.convert_slow_tokenizer",
)


def preload() -> list[str]:
    """Import ``MODULES``; returns the ones that could not be imported."""
    choose_deepspeed_accelerator()  # before DeepSpeed's import, as a trial does
    missing = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional speed-up must never stop a worker from starting
            missing.append(name)
    return missing


MISSING = preload()
