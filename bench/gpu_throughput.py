"""One trial's training throughput at real XLM-R geometry: ray_xt's trial loop vs a plain HF Trainer, like for like.

    make bench-gpu                       # on a GPU node: base and large at the shipped defaults, XL with offload
    .venv/bin/python bench/gpu_throughput.py --scale large --seq-len 384 --batch-size 16 --grad-accum 4
    .venv/bin/python bench/gpu_throughput.py --scale xl --seq-len 256 --batch-size 8   # one 80 GB GPU, offloaded
    .venv/bin/python bench/gpu_throughput.py --smoke     # tiny geometry on CPU: keeps the script alive in CI

Random weights in XLM-R base / large / XL's shapes (layers, hidden size, FFN, heads, the 250,002-token
vocabulary), a sequence-classification head, and synthetic batches of one length: no weights or data to
download, and every token is real (no padding), so tokens/s is exact.

Like for like: each side trains in its own fresh process (no process group, engine or allocator cache left by
the other) on the same model file, batches, effective batch, accumulation and steps, under one precision policy
(bf16 where the device has it natively, else fp32 — both sides, stated in the output). ray_xt runs
``ray_xt.loop.train`` (DeepSpeed at the given ZeRO stage, the loop every trial runs); the Trainer runs plain
PyTorch (no DeepSpeed; fp32 master weights under bf16 autocast). Both are timed the same way: a
``cuda.synchronize()`` at every optimiser-step boundary, the first ``--warmup`` steps excluded, wall time over the
remaining steps (batch assembly and host-to-device copies included on both sides). Reported per side: tokens/s,
model FLOPs utilisation (training FLOPs per token 6N + 12·L·H·S, N the non-embedding parameters, over the
device's peak bf16 FLOP/s from ``PEAK_BF16_TFLOPS``, or ``--peak-tflops``) and peak device memory. Results and
the commands that made them: docs/benchmarks.md, "GPU throughput".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _world import machine, today, work_folder

# (layers, hidden, FFN, heads) of the hub checkpoints (their config.json); vocabulary 250,002 (XL: 250,880)
GEOMETRY = {"base": (12, 768, 3072, 12), "large": (24, 1024, 4096, 16), "xl": (36, 2560, 10240, 32),
            "smoke": (2, 64, 256, 2)}
VOCAB = {"base": 250_002, "large": 250_002, "xl": 250_880, "smoke": 1000}
# dense bf16 tensor-core peak (TFLOP/s, no sparsity) from the vendors' data sheets, matched in this order against
# torch.cuda.get_device_name(): the first name it contains wins
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("H20", 148.0),
                    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
                    ("A10G", 125.0), ("A10", 125.0), ("A30", 165.0), ("RTX 6000 Ada", 364.0), ("A6000", 155.0),
                    ("B200", 2250.0), ("GB200", 2500.0))


def peak_tflops(device: str) -> float | None:
    return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device), None)


def flops_per_token(layers: int, hidden: int, non_embedding: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 per non-embedding parameter (forward 2, backward 4) plus attention's
    scores and weighted sums (12·L·H·S; Kaplan et al. 2020, PaLM appendix B)."""
    return 6 * non_embedding + 12 * layers * hidden * seq_len


class StepTimer:
    """Wall time of optimiser steps after ``warmup``: called at every step boundary, it waits for the device."""

    def __init__(self, warmup: int):
        self.warmup, self.boundaries = warmup, []

    def boundary(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.boundaries.append(time.perf_counter())

    def timed(self) -> tuple[int, float]:
        """(steps, seconds) after the warm-up steps."""
        marks = self.boundaries[self.warmup:]
        return len(marks) - 1, marks[-1] - marks[0]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="base", choices=[g for g in GEOMETRY if g != "smoke"])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="effective batch (as trial.batch_size)")
    parser.add_argument("--grad-accum", type=int, default=None, help="micro-batches per step (as trial.grad_accum; "
                        "default: what a study chooses for the scale, from its micro_batch_tokens)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=3, help="optimiser steps before timing starts")
    parser.add_argument("--zero-stage", type=int, default=None, help="ray_xt's ZeRO stage (default: the scale's)")
    parser.add_argument("--offload", choices=("auto", "on", "off"), default="auto",
                        help="ray_xt's optimizer in host memory (auto: as the scale, on for xl)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak bf16 TFLOP/s, for MFU "
                        "(default: looked up by device name)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--smoke", action="store_true", help="tiny geometry and sizes on CPU, for CI")
    parser.add_argument("--side", choices=("ray_xt", "trainer"), help=argparse.SUPPRESS)  # one side, in a child
    parser.add_argument("--work", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.smoke:
        opts.seq_len, opts.batch_size, opts.grad_accum, opts.steps, opts.warmup, opts.threads = 32, 8, 2, 3, 1, 1
    scale = f"xlmr-{opts.scale}"
    if opts.grad_accum is None or opts.zero_stage is None or opts.offload == "auto":
        from ray_xt.config import parse_study
        from ray_xt.scales import SCALES

        study = parse_study({"name": "bench", "data": {"source": "hub"}, "scales": [scale],
                             "target": {"tasks": ["xnli"]},
                             "trial": {"batch_size": opts.batch_size, "max_seq_length": opts.seq_len}})
        if opts.grad_accum is None:  # the study's own choice; one device takes every rank's part
            opts.grad_accum = study.grad_accum_for("xnli", scale) * study.workers_for(scale)
        if opts.zero_stage is None:
            opts.zero_stage = SCALES[scale].zero_stage
        if opts.offload == "auto":
            opts.offload = "on" if SCALES[scale].offload_optimizer and not opts.smoke else "off"
    return opts


def build(opts, work: Path) -> dict:
    """The model file and the batches both sides read."""
    import torch
    from datasets import Dataset, DatasetDict
    from transformers import (
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
        XLMRobertaXLConfig,
        XLMRobertaXLForSequenceClassification,
    )

    from ray_xt.micro.pretrain import train_tokenizer

    geometry = "smoke" if opts.smoke else opts.scale
    layers, hidden, ffn, heads = GEOMETRY[geometry]
    vocab = VOCAB[geometry]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(f"word{i} word{i + 1} word{i + 2}" for i in range(400)) + "\n")
    tokenizer = train_tokenizer([corpus], work / "model", vocab_size=300, seed=0)  # only its special ids matter
    xl = geometry == "xl"
    config = (XLMRobertaXLConfig if xl else XLMRobertaConfig)(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, max_position_embeddings=514, type_vocab_size=1, num_labels=3,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = (XLMRobertaXLForSequenceClassification if xl else XLMRobertaForSequenceClassification)(config)
    model.save_pretrained(work / "model")
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    del model

    # every step the loop may take, and two more: the ray_xt side stops itself after the timed steps
    examples = opts.batch_size * (opts.warmup + opts.steps + 2)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (examples, opts.seq_len), generator=generator)
    ids[:, 0], ids[:, -1] = tokenizer.bos_token_id, tokenizer.eos_token_id
    labels = torch.randint(0, 3, (examples,), generator=generator).tolist()
    for name, rows in (("train", examples), ("dev", min(examples, 16))):
        features = DatasetDict({"features": Dataset.from_dict({"input_ids": ids[:rows].tolist(), "label": labels[:rows]}),
                                "examples": Dataset.from_dict({"json": ["{}"] * rows})})
        features.save_to_disk(str(work / name))
        (work / name / "labels.json").write_text(json.dumps(["entailment", "neutral", "contradiction"]))
    return {"layers": layers, "hidden": hidden, "non_embedding": non_embedding}


def ray_xt_side(opts, work: Path) -> dict:
    """``ray_xt.loop.train`` with a session that times every step boundary and stops after the timed steps (no
    evaluation or checkpoint is reached)."""
    from ray_xt.loop import Hyper, OneProcessSession, TaskInputs, TrialSpec, train
    from ray_xt.process_env import prepare_process

    prepare_process(opts.threads)
    timer = StepTimer(opts.warmup)

    class TimedSession(OneProcessSession):
        def stop_requested(self) -> bool:  # the loop asks before every optimiser step
            timer.boundary()
            return len(timer.boundaries) > opts.warmup + opts.steps

        def report(self, metrics, directory, name, final=False) -> None:
            raise AssertionError("the timed steps end before the first evaluation")

    labels = ("entailment", "neutral", "contradiction")
    spec = TrialSpec(model_path=str(work / "model"), tokenizer_path=str(work / "model"),
                     tasks=(TaskInputs("xnli", labels, str(work / "train"), str(work / "dev")),),
                     epochs=1, batch_size=opts.batch_size, evals_per_epoch=1, warmup_ratio=0.1, weight_decay=0.01,
                     zero_stage=opts.zero_stage, bf16="auto", cpus=opts.threads, seed=0, stage_key="bench",
                     git_revision="bench", grad_accum=opts.grad_accum, offload_optimizer=opts.offload == "on")
    train(spec, Hyper(learning_rate=1e-5), TimedSession())
    return {"timer": timer}


def trainer_side(opts, work: Path) -> dict:
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from ray_xt.loop import _use_bf16

    torch.set_num_threads(opts.threads)
    timer = StepTimer(opts.warmup)

    class Boundaries(TrainerCallback):  # public hooks: the first step's start, every step's end
        def on_train_begin(self, args, state, control, **kwargs):
            timer.boundary()

        def on_step_end(self, args, state, control, **kwargs):
            timer.boundary()

    train_set = load_from_disk(str(work / "train"))["features"].rename_column("label", "labels")
    cuda = torch.cuda.is_available()
    args = TrainingArguments(output_dir=str(work / "hf"), learning_rate=1e-5, max_steps=opts.warmup + opts.steps,
                             per_device_train_batch_size=opts.batch_size // opts.grad_accum,
                             gradient_accumulation_steps=opts.grad_accum, warmup_steps=0.1, weight_decay=0.01,
                             max_grad_norm=1.0, bf16=_use_bf16("auto"), eval_strategy="no", save_strategy="no",
                             report_to=[], use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=True,
                             logging_strategy="no", seed=0, dataloader_pin_memory=cuda)
    model = AutoModelForSequenceClassification.from_pretrained(work / "model")
    Trainer(model=model, args=args, train_dataset=train_set, callbacks=[Boundaries()]).train()
    return {"timer": timer}


def run_side(opts) -> None:
    """One side in this (fresh) process; prints its measurements as one JSON line."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(opts.threads)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    side = (ray_xt_side if opts.side == "ray_xt" else trainer_side)(opts, Path(opts.work))
    steps, seconds = side["timer"].timed()
    print(json.dumps({"steps": steps, "seconds": seconds,
                      "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}))


def trainer_fits(opts, device_bytes: float | None) -> str | None:
    """Why the plain Trainer cannot hold this model on one device (None: it can): 16 bytes per parameter (fp32
    weights and gradients, Adam's moments) before activations."""
    if device_bytes is None or opts.smoke:
        return None
    from ray_xt.budgets import HUB_ARCHITECTURES, human

    need = 16 * HUB_ARCHITECTURES[f"xlmr-{opts.scale}"].parameters
    return None if need < device_bytes else f"needs {human(need)} of model states alone, the device has {human(device_bytes)}"


def ray_xt_fits(opts, device_bytes: float | None) -> str | None:
    """Why ray_xt's one rank cannot hold this model on this device (None: it can), by ray_xt.budgets."""
    if device_bytes is None or opts.smoke:
        return None
    from ray_xt.budgets import CONTEXT_BYTES, HUB_ARCHITECTURES, human, model_state_bytes

    arch = HUB_ARCHITECTURES[f"xlmr-{opts.scale}"]
    need = sum(model_state_bytes(arch.parameters, True, opts.zero_stage, 1, opts.offload == "on")[:3]) + CONTEXT_BYTES
    if need < device_bytes:
        return None
    ranks = next((n for n in (2, 4, 8, 16) if sum(model_state_bytes(arch.parameters, True, 3, n, True)[:3])
                  + CONTEXT_BYTES < device_bytes), None)
    return (f"needs {human(need)} on one device before activations (ZeRO-{opts.zero_stage}, offload {opts.offload}), "
            f"the device has {human(device_bytes)}: " + (f"a ZeRO-3 offloaded trial needs {ranks} GPUs of this size"
                                                        if ranks else "no single node of these GPUs holds it"))


def main() -> None:
    opts = parse()
    if opts.side:
        run_side(opts)
        return
    import torch

    from ray_xt.loop import _use_bf16

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"CPU, {opts.threads} threads"
    device_bytes = torch.cuda.get_device_properties(0).total_memory if cuda else None
    work = work_folder("ray_xt_bench_gpu_")
    shape = build(opts, work)
    bf16 = _use_bf16("auto")
    per_token = flops_per_token(shape["layers"], shape["hidden"], shape["non_embedding"], opts.seq_len)
    peak = opts.peak_tflops or (peak_tflops(device) if cuda else None)
    result = {"date": today(), "machine": machine(), "device": device, "scale": "smoke" if opts.smoke else opts.scale,
              "seq_len": opts.seq_len, "batch": opts.batch_size, "grad_accum": opts.grad_accum,
              "precision": "bf16 (both sides)" if bf16 else "fp32 (both sides)", "zero_stage": opts.zero_stage,
              "offload": opts.offload, "steps": opts.steps, "warmup": opts.warmup,
              "non_embedding_parameters": shape["non_embedding"], "flops_per_token": per_token, "peak_tflops": peak}
    argv = [a for a in sys.argv[1:] if a != "--smoke"] + (["--smoke"] if opts.smoke else [])
    for side, why_not in (("ray_xt", ray_xt_fits(opts, device_bytes)), ("trainer", trainer_fits(opts, device_bytes))):
        if why_not:
            result[f"{side}_skipped"] = why_not
            print(f"[bench] {side}: not run: {why_not}", file=sys.stderr)
            continue
        child = subprocess.run([sys.executable, __file__, *argv, "--side", side, "--work", str(work),
                                "--grad-accum", str(opts.grad_accum), "--zero-stage", str(opts.zero_stage),
                                "--offload", opts.offload], capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(f"[bench] the {side} side failed:\n{child.stderr[-4000:]}")
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        if measured["steps"] != opts.steps:
            raise SystemExit(f"[bench] the {side} side timed {measured['steps']} steps, not {opts.steps}")
        rate = measured["steps"] * opts.batch_size * opts.seq_len / measured["seconds"]
        result[f"{side}_tokens_per_s"] = round(rate)
        result[f"{side}_peak_gib"] = measured["peak_gib"]
        if peak:
            result[f"{side}_mfu"] = round(per_token * rate / (peak * 1e12), 4)
    if "ray_xt_tokens_per_s" in result and "trainer_tokens_per_s" in result:
        result["ratio"] = round(result["ray_xt_tokens_per_s"] / result["trainer_tokens_per_s"], 2)
    print(json.dumps(result))
    print(table_row(result, shape))


def table_row(r: dict, shape: dict) -> str:
    def side(name: str) -> str:
        if f"{name}_tokens_per_s" not in r:
            return f"not run ({r.get(f'{name}_skipped', '?')})"
        mfu = f", MFU {r[f'{name}_mfu']:.1%}" if f"{name}_mfu" in r else ""
        memory = f", peak {r[f'{name}_peak_gib']} GiB" if r.get(f"{name}_peak_gib") is not None else ""
        return f"{r[f'{name}_tokens_per_s']} tok/s{mfu}{memory}"

    ratio = f"**{r['ratio']}x**" if "ratio" in r else "-"
    offload = " offload" if r["offload"] == "on" else ""
    return (f"| {r['date']} | {r['device']} | {r['scale']} L{shape['layers']} H{shape['hidden']}, S {r['seq_len']}, "
            f"{r['batch']} = {r['batch'] // r['grad_accum']} x {r['grad_accum']}, {r['precision']}, "
            f"ZeRO-{r['zero_stage']}{offload} | {side('ray_xt')} | {side('trainer')} | {ratio} |")


if __name__ == "__main__":
    main()
