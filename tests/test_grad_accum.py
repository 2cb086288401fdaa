"""Gradient accumulation: batch_size stays the effective batch; accumulated micro-batches make the same update
as the whole batch (a real DeepSpeed engine on CPU)."""

import subprocess
import sys

from ray_xt.loop import deepspeed_config, micro_batches

SAME_UPDATE = r"""
import torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification
from ray_xt.loop import accumulated_step, deepspeed_config, micro_batches
from ray_xt.process_env import prepare_process
prepare_process(1)
import deepspeed

def engine(grad_accum):
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=40, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, num_labels=3)
    model = XLMRobertaForSequenceClassification(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    e, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                      config=deepspeed_config(8, 0, False, 1, grad_accum))
    return e

torch.manual_seed(1)
ids = torch.randint(5, 50, (8, 12))
labels = torch.randint(0, 3, (8,))
updated = []
for accum in (1, 2, 4):
    e = engine(accum)
    batches = [{"input_ids": ids[m], "labels": labels[m]} for m in micro_batches(list(range(8)), accum)]
    loss = accumulated_step(e, batches, lambda b: e(**b).loss, lambda loss: None)
    updated.append(torch.cat([p.detach().flatten() for p in e.module.parameters()]))
    print("accum", accum, "loss", round(loss, 6), "steps", e.global_steps)
assert torch.allclose(updated[0], updated[1], atol=1e-6) and torch.allclose(updated[0], updated[2], atol=1e-6)
print("same update")
"""


def test_micro_batches_always_make_grad_accum_parts():
    assert micro_batches(list(range(8)), 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert micro_batches([0, 1, 2], 4) == [[0], [1], [2], [0]]  # a short last batch keeps the boundary in place
    assert deepspeed_config(32, 2, False, 1, 8)["train_micro_batch_size_per_gpu"] == 4
    assert deepspeed_config(32, 2, False, 2, 4)["gradient_accumulation_steps"] == 4


def test_accumulated_micro_batches_make_the_whole_batchs_update():
    out = subprocess.run([sys.executable, "-c", SAME_UPDATE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "same update" in out.stdout
    assert "accum 4 loss" in out.stdout and "steps 1" in out.stdout  # one optimiser step over four micro-batches


def test_each_scale_accumulates_what_does_not_fit_its_device_and_keeps_the_effective_batch():
    """Per scale, a micro-batch of at most ``micro_batch_tokens`` per device (jiant's XLM-R large: 4 examples of
    512 tokens); the study's batch_size stays the effective batch; an explicit grad_accum or a scale override wins."""
    import pytest

    from ray_xt.config import ConfigError, parse_study
    from ray_xt.scales import SCALES

    def study(length=256, batch=32, scales=("xlmr-base", "xlmr-large", "xlmr-xl"), **extra):
        trial = {"max_seq_length": length, "batch_size": batch, **extra.pop("trial", {})}
        return parse_study({"name": "fit", "data": {"source": "hub"}, "scales": list(scales),
                            "target": {"tasks": ["xnli"]}, "trial": trial, **extra})

    def micro(cfg, scale):  # examples per device per micro-batch
        return cfg.trial.batch_size // (cfg.workers_for(scale) * cfg.grad_accum_for("xnli", scale))

    cfg = study(512)
    assert [cfg.grad_accum_for("xnli", s) for s in ("xlmr-base", "xlmr-large", "xlmr-xl")] == [4, 8, 4]
    assert micro(cfg, "xlmr-large") * 512 <= SCALES["xlmr-large"].micro_batch_tokens and micro(cfg, "xlmr-large") == 4
    assert [study(128).grad_accum_for("xnli", s) for s in ("xlmr-base", "xlmr-large")] == [1, 2]
    odd = study(512, batch=30, scales=["xlmr-large"])  # the fewest accumulation steps that split 30 evenly with <= 4 examples each
    assert odd.grad_accum_for("xnli", "xlmr-large") == 10 and micro(odd, "xlmr-large") == 3
    assert study(512, trial={"grad_accum": 2}).grad_accum_for("xnli", "xlmr-large") == 2  # the study's choice wins
    fit = study(512, scale_overrides={"xlmr-large": {"micro_batch_tokens": 8192, "gpus": 2, "cpus": 12}})
    assert fit.grad_accum_for("xnli", "xlmr-large") == 2 and fit.resources_for("xlmr-large") == (12, 2)
    # two xlmr-base trials share a GPU unless the study says otherwise; micro scales never accumulate by default
    assert cfg.resources_for("xlmr-base") == (4, 0.5)
    assert study(trial={"gpus": 1}).resources_for("xlmr-base")[1] == 1
    assert parse_study({"name": "m", "scales": ["micro-s"], "target": {"tasks": ["xnli"]}}).grad_accum_for(
        "xnli", "micro-s") == 1
    with pytest.raises(ConfigError, match=r"scale_overrides: \['xlmr-xl'\] are not scales of this study"):
        parse_study({"name": "x", "data": {"source": "hub"}, "scales": ["xlmr-base"], "target": {"tasks": ["xnli"]},
                     "scale_overrides": {"xlmr-xl": {"gpus": 1}}})


BF16_PATHS = r"""
import tempfile
import torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification
from ray_xt.loop import accumulated_step, deepspeed_config, micro_batches
from ray_xt.process_env import prepare_process
prepare_process(1)
import deepspeed

def engine(stage):
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=40, num_labels=3)
    model = XLMRobertaForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    e, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(8, stage, True, 1, 4))
    return e

torch.manual_seed(1)
ids, labels = torch.randint(5, 50, (8, 12)), torch.randint(0, 3, (8,))
batches = [{"input_ids": ids[m], "labels": labels[m]} for m in micro_batches(list(range(8)), 4)]
for stage in (0, 2):
    e = engine(stage)
    accumulated_step(e, batches, lambda b: e(**b).loss, lambda loss: None)
    o = e.optimizer
    accum = o.fp32_groups_gradients_flat[0].dtype if hasattr(o, "fp32_groups_gradients_flat") \
        else o.gradient_accumulation_dtype
    print("stage", stage, "runs", e.zero_optimization_stage(), type(o).__name__, "accumulates", accum,
          "weights", next(e.module.parameters()).dtype)
    with tempfile.TemporaryDirectory() as tmp:  # what a retried trial resumes from
        e.save_checkpoint(tmp, tag="state")
        after = [p.detach().clone() for p in e.module.parameters()]
        e.destroy()
        again = engine(stage)
        again.load_checkpoint(tmp, tag="state")
        same = all(torch.equal(a, b) for a, b in zip(after, again.module.parameters()))
        print("stage", stage, "resumed", same, "step", again.global_steps)
        again.destroy()
"""


def test_bf16_trials_run_the_maintained_bf16_optimizer_and_accumulate_in_fp32():
    """bf16 asked for with ZeRO-0 runs ZeRO-1's BF16_Optimizer (fp32 gradient buffers), not the legacy wrapper that
    accumulates in bf16; ZeRO-2 accumulates in fp32 too; both save and resume."""
    assert deepspeed_config(8, 0, True)["zero_optimization"]["stage"] == 1
    assert deepspeed_config(8, 0, False)["zero_optimization"]["stage"] == 0  # fp32: nothing to wrap
    out = subprocess.run([sys.executable, "-c", BF16_PATHS], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "stage 0 runs 1 BF16_Optimizer accumulates torch.float32 weights torch.bfloat16" in out.stdout
    assert "stage 2 runs 2 DeepSpeedZeroOptimizer accumulates torch.float32 weights torch.bfloat16" in out.stdout
    assert "stage 0 resumed True step 1" in out.stdout and "stage 2 resumed True step 1" in out.stdout
