"""Model scales: named model specs with their per-trial resources and DeepSpeed defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ray_xt.micro.spec import PretrainSpec


@dataclass(frozen=True)
class Scale:
    name: str
    hub_id: str | None = None  # loaded from the HF hub (or a local mirror of it)
    micro: PretrainSpec | None = None  # built locally by `ray-xt micro build`
    train_batch_size: int = 32
    cpus_per_trial: float = 1  # per worker when workers_per_trial > 1
    gpus_per_trial: float = 0  # per worker when workers_per_trial > 1
    # > 1: each trial trains as this many data-parallel Ray Train workers (one DeepSpeed rank each)
    workers_per_trial: int = 1
    zero_stage: int = 2
    # fp32 master weights and Adam's moments in host memory (ZeRO-Offload): the device keeps bf16 weights and
    # gradients and activations (docs/memory.md)
    offload_optimizer: bool = False
    # the largest micro-batch, in tokens (examples x max_seq_length), a trial puts on one device at once with bf16
    # and the scale's ZeRO stage, sharing the device as gpus_per_trial says; a larger per-device share of
    # batch_size is accumulated over micro-batches (the effective batch stays). None: the whole share at once.
    micro_batch_tokens: int | None = None
    # rough training throughput (examples/s per trial) used by `ray-xt plan` for cost estimates until trials have
    # measured it; the micro values are what the demo's one-core trials and the validity check's measured on a
    # 2-core CPU (docs/benchmarks.md, "Demo study")
    examples_per_second: float = 200.0

    @property
    def num_layers(self) -> int:
        """Encoder layers (what retrieval_layer may name)."""
        return self.micro.num_layers if self.micro is not None else HUB_LAYERS[self.name]

    @property
    def hidden_size(self) -> int:
        """Model width (what the warm start's learning-rate rule across scales reads)."""
        return self.micro.hidden_size if self.micro is not None else HUB_HIDDEN[self.name]

    @property
    def is_micro(self) -> bool:
        return self.micro is not None

    @property
    def throughput_key(self) -> str:
        """What measured throughput is filed under (``ray_xt.costs.ThroughputTable``): a micro scale's shape is
        part of it, so a scale whose definition changed does not inherit the old model's measurements."""
        if self.micro is None:
            return self.name
        m = self.micro
        return f"{self.name}:h{m.hidden_size}x{m.num_layers}i{m.intermediate_size}"


MICRO_STEPS = 1900
# num_hidden_layers of the hub checkpoints' config.json
HUB_LAYERS = {"xlmr-base": 12, "xlmr-large": 24, "xlmr-xl": 36}
HUB_HIDDEN = {"xlmr-base": 768, "xlmr-large": 1024, "xlmr-xl": 2560}  # hidden_size of the same config.json files

SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # A ladder of ~3x steps in parameters (0.22 M, 0.63 M, 2.15 M with the default world's word-level
        # vocabulary), every scale pretrained for the same number of updates on the same corpus (as XLM-R base
        # and large were), so a scale differs from the next in capacity alone. `make micro` takes ~8 minutes on an
        # AVX2 CPU without bf16 (micro-l on one core from the moment the tokenizer exists; task files, then
        # micro-m, then micro-s on the other). More updates would fit the 15-minute budget; on the subword world
        # (v8) 2,800 each made micro-l transfer less, on the word-level world (v9) 2,800 for micro-l alone traded
        # XNLI-like gains for UD-POS-like losses (docs/micro_world.md). A step is 64 sentences' worth of tokens in
        # length-grouped batches; far fewer, larger steps left transfer at chance beyond the cognate language.
        Scale("micro-s", micro=PretrainSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256,
                                            steps=MICRO_STEPS, learning_rate=2e-3), examples_per_second=840.0),
        Scale("micro-m", micro=PretrainSpec(hidden_size=96, num_layers=4, num_heads=4, intermediate_size=384,
                                            steps=MICRO_STEPS, learning_rate=1.5e-3), examples_per_second=280.0),
        Scale("micro-l", micro=PretrainSpec(hidden_size=192, num_layers=4, num_heads=4, intermediate_size=768,
                                            steps=MICRO_STEPS, learning_rate=1e-3), examples_per_second=90.0),
        # XLM-R XL's architecture at micro-s size, trained as XL is (a 2-rank worker group, ZeRO-3, optimizer
        # offloaded): XL's code paths on CPU (tests/test_xl_paths.py); not a rung of the scaling ladder
        Scale("micro-xl", micro=PretrainSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256,
                                             steps=MICRO_STEPS, learning_rate=2e-3, architecture="xlm-roberta-xl"),
              workers_per_trial=2, zero_stage=3, offload_optimizer=True, examples_per_second=300.0),
        # Two xlmr-base trials share a GPU (0.5 each): 278 M parameters with Adam's states in fp32 are ~4.5 GB,
        # and micro-batches of 4,096 tokens (32 x 128, 8 x 512) keep each under half of a 24 GB A10G / L4.
        Scale("xlmr-base", hub_id="FacebookAI/xlm-roberta-base", train_batch_size=32, cpus_per_trial=4,
              gpus_per_trial=0.5, micro_batch_tokens=4096, examples_per_second=250.0),
        # jiant's XTREME runs of XLM-R large: 4 examples of up to 512 tokens per micro-batch, 8 accumulated (= 32)
        Scale("xlmr-large", hub_id="FacebookAI/xlm-roberta-large", train_batch_size=32, cpus_per_trial=8,
              gpus_per_trial=1, micro_batch_tokens=2048, examples_per_second=80.0),
        # "Beyond": XLM-R XL (3.5B parameters) does not fit one GPU with Adam states. ZeRO-3 over 4 GPUs alone needs
        # ~25 GB per rank, over the cluster files' 24 GB A10G / L4; with the optimizer offloaded to the node's host
        # memory ~11 GB (ray_xt/budgets.py, docs/memory.md). On 80 GB GPUs offload_optimizer: false is faster.
        Scale("xlmr-xl", hub_id="facebook/xlm-roberta-xl", train_batch_size=32, cpus_per_trial=8,
              gpus_per_trial=1, workers_per_trial=4, zero_stage=3, offload_optimizer=True, micro_batch_tokens=1024,
              examples_per_second=20.0),
    )
}


MODEL_MIRROR_ENV = "RAY_XT_MODEL_MIRROR"


def model_location(scale: str, model_path: str | None = None) -> str:
    """Where a hub scale's model loads from: the study's model_paths entry, else $RAY_XT_MODEL_MIRROR/<hub id>
    (a folder per hub id, as `huggingface-cli download <hub id> --local-dir` leaves it), else the hub id."""
    if model_path:
        return str(Path(model_path).expanduser())
    hub_id = SCALES[scale].hub_id
    if hub_id is None:
        raise ValueError(f"{scale}: a micro scale, built by ray-xt itself, has no hub model")
    mirror = os.environ.get(MODEL_MIRROR_ENV)
    return str(Path(mirror).expanduser() / hub_id) if mirror else hub_id
