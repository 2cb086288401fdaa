"""The memory and storage arithmetic `ray-xt plan` prints (ray_xt/budgets.py), pinned to transformers' models and
to what a real DeepSpeed engine holds and writes on CPU; and `ray-xt run` refusing a storage without room."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from ray_xt.budgets import HUB_ARCHITECTURES, model_state_bytes, saved_bytes
from ray_xt.cli import app


@pytest.mark.parametrize("scale", sorted(HUB_ARCHITECTURES))
def test_parameter_counts_are_transformers_own(scale):
    """Built on the meta device (no memory): XLM-R base, large and XL with a sequence-classification head."""
    import torch
    import transformers

    arch = HUB_ARCHITECTURES[scale]
    prefix = "XLMRobertaXL" if scale == "xlmr-xl" else "XLMRoberta"
    config = getattr(transformers, f"{prefix}Config")(
        vocab_size=arch.vocab, hidden_size=arch.hidden, num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads, intermediate_size=arch.intermediate, max_position_embeddings=arch.positions,
        num_labels=3)
    with torch.device("meta"):
        model = getattr(transformers, f"{prefix}ForSequenceClassification")(config)
    assert arch.parameters == pytest.approx(sum(p.numel() for p in model.parameters()), rel=1e-3)


MEASURE = r"""
import gc, json, os, sys, tempfile
import torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification
from ray_xt.loop import deepspeed_config
from ray_xt.process_env import prepare_process
prepare_process(1)
import deepspeed

def live_bytes():
    seen = {}
    for o in gc.get_objects():
        if isinstance(o, torch.Tensor):
            seen[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
    return sum(seen.values())

def size(folder):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(folder) for f in files)

zero, bf16 = int(sys.argv[1]), sys.argv[2] == "bf16"
torch.manual_seed(0)
config = XLMRobertaConfig(vocab_size=30000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=512, max_position_embeddings=514, num_labels=2)
gc.collect()
before = live_bytes()
model = XLMRobertaForSequenceClassification(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(4, zero, bf16))
ids, labels = torch.randint(5, 30000, (4, 16)), torch.randint(0, 2, (4,))
peak = 0
for _ in range(2):  # the second step's peak: optimizer states exist and the gradients of the next step too
    loss = engine(input_ids=ids, labels=labels).loss
    engine.backward(loss)
    del loss
    gc.collect()
    peak = max(peak, live_bytes() - before)
    engine.step()
with tempfile.TemporaryDirectory() as tmp:
    engine.save_checkpoint(tmp + "/ds", tag="state")
    engine.module.save_pretrained(tmp + "/model")
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "peak": peak,
                      "ds": size(tmp + "/ds"), "model": size(tmp + "/model")}))
"""


@pytest.mark.parametrize("zero,precision", [(0, "fp32"), (2, "fp32"), (0, "bf16"), (2, "bf16")])
def test_model_states_and_checkpoint_sizes_are_what_a_real_engine_holds_and_writes(zero, precision):
    out = subprocess.run([sys.executable, "-c", MEASURE, str(zero), precision], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    p, bf16 = measured["parameters"], precision == "bf16"
    weights, gradients, optimizer, host = model_state_bytes(p, bf16, zero, 1)
    assert host == 0
    # live tensors at the peak also count the activations of a tiny batch and DeepSpeed's small buffers
    assert measured["peak"] == pytest.approx(weights + gradients + optimizer, rel=0.08), measured
    model, state = saved_bytes(p, bf16, zero)
    assert measured["model"] == pytest.approx(model, rel=0.02)
    assert measured["ds"] == pytest.approx(state, rel=0.02)


def test_offloading_takes_the_optimizer_states_off_the_device_and_xl_fits_24_gb_only_so():
    from ray_xt.budgets import trial_memory
    from ray_xt.config import load_study

    cfg = load_study(ROOT / "experiments" / "scaling_beyond.yaml")
    offloaded = trial_memory(cfg, "mnli", "xlmr-xl")
    assert offloaded.optimizer == 0 and offloaded.host_optimizer > 10e9 and offloaded.fits(24)
    on_device = trial_memory(load_study(ROOT / "experiments" / "scaling_beyond.yaml",
                                        ["trial.offload_optimizer=false"]), "mnli", "xlmr-xl")
    assert not on_device.fits(24) and on_device.fits(40)
    assert trial_memory(cfg, "mnli", "xlmr-large").fits(24)


def test_plan_prints_memory_fit_and_storage_per_scale(ray_never_started):
    result = CliRunner().invoke(app, ["plan", str(ROOT / "experiments" / "scaling_beyond.yaml")])
    assert result.exit_code == 0, result.output
    assert "| xlmr-xl | 3,482.5 M | ZeRO-3 offload, 4 ranks | 4 x 256 (mnli) |" in result.output
    assert "| yes / yes / yes |" in result.output
    assert "| xlmr-xl | 78 | 7.0 GB | 55.7 GB |" in result.output  # bf16 model; + 14 bytes per parameter
    assert "storage: up to " in result.output and " kept when done; " in result.output


def test_run_refuses_a_local_storage_without_room_before_ray_starts(tmp_path, ray_never_started):
    """scaling_beyond keeps ~0.6 TB of XL and large checkpoints: more than this machine's disk has free."""
    from ray_xt.budgets import free_bytes

    assert free_bytes(str(tmp_path)) < 500e9, "this disk has room for the study: the refusal cannot be shown here"
    result = CliRunner().invoke(app, ["run", str(ROOT / "experiments" / "scaling_beyond.yaml"),
                                      "--storage", str(tmp_path / "results"),
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2, result.output
    assert f"storage: {tmp_path / 'results'} has " in result.output
    assert "156 stages still to run need up to 912.9 GB" in result.output
    assert not (tmp_path / "results").exists()  # nothing written
