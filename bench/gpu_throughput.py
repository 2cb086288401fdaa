"""One trial's training throughput at real XLM-R geometry: ray_xt's trial loop vs a plain HF Trainer.

    # on a GPU node (directly, or `ray exec <cluster.yaml> 'cd ~/ray-xt && .venv/bin/python bench/gpu_throughput.py ...'`
    # when the head has the GPU):
    .venv/bin/python bench/gpu_throughput.py --scale large --seq-len 384 --batch-size 16 --grad-accum 4 --peak-tflops 312
    .venv/bin/python bench/gpu_throughput.py --smoke     # tiny geometry on CPU: keeps the script alive in CI

Random weights in XLM-R base / large / XL's shapes (layers, hidden size, FFN, heads, the 250,002-token
vocabulary), a sequence-classification head, and synthetic batches of one length: no weights or data to
download, and every token is real (no padding), so tokens/s is exact. The same model, batches, effective batch,
accumulation, bf16 (where the device has it) and steps go through ``ray_xt.loop.train`` (DeepSpeed ZeRO, the
loop every trial runs; its reports to a local session) and ``transformers.Trainer`` (no DeepSpeed), one after
the other in this process. Reported per side: tokens/s of optimiser work, model FLOPs utilisation (training
FLOPs per token 6N + 12·L·H·S, N the non-embedding parameters, over ``--peak-tflops``) and peak device memory;
the ratio is ray_xt over the Trainer. Results and the commands that made them: docs/benchmarks.md, "GPU
throughput".
"""

from __future__ import annotations

import argparse
import json
import os
import time

from _world import machine, today, work_folder

# (layers, hidden, FFN, heads) of the hub checkpoints (their config.json); vocabulary 250,002 for all three
GEOMETRY = {"base": (12, 768, 3072, 12), "large": (24, 1024, 4096, 16), "xl": (36, 2560, 10240, 32),
            "smoke": (2, 64, 256, 2)}
XLMR_VOCAB = 250_002


def flops_per_token(layers: int, hidden: int, non_embedding: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 per non-embedding parameter (forward 2, backward 4) plus attention's
    scores and weighted sums (12·L·H·S; Kaplan et al. 2020, PaLM appendix B)."""
    return 6 * non_embedding + 12 * layers * hidden * seq_len


def step_clock():
    """A Trainer callback summing the wall time of its optimiser steps (public ``TrainerCallback`` hooks)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        seconds = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self._started

    return StepClock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="base", choices=[g for g in GEOMETRY if g != "smoke"])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="effective batch (as trial.batch_size)")
    parser.add_argument("--grad-accum", type=int, default=None, help="micro-batches per step (as trial.grad_accum; "
                        "default: what a study chooses for the scale, from its micro_batch_tokens)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU (A100 bf16: 312)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--smoke", action="store_true", help="tiny geometry and sizes on CPU, for CI")
    opts = parser.parse_args()
    if opts.smoke:
        opts.seq_len, opts.batch_size, opts.grad_accum, opts.steps, opts.threads = 32, 8, 2, 3, 1
    elif opts.grad_accum is None:  # the study's own choice for this scale at this length and batch
        from ray_xt.config import parse_study

        scale = f"xlmr-{opts.scale}"
        study = parse_study({"name": "bench", "data": {"source": "hub"}, "scales": [scale],
                             "target": {"tasks": ["xnli"]},
                             "trial": {"batch_size": opts.batch_size, "max_seq_length": opts.seq_len}})
        opts.grad_accum = study.grad_accum_for("xnli", scale) * study.workers_for(scale)  # one device: all ranks' parts
    os.environ["OMP_NUM_THREADS"] = str(opts.threads)

    import torch
    from datasets import Dataset, DatasetDict
    from transformers import Trainer, TrainingArguments, XLMRobertaConfig, XLMRobertaForSequenceClassification

    from ray_xt.loop import MemorySession, TaskInputs, TrialSpec, _use_bf16, train
    from ray_xt.micro.pretrain import train_tokenizer
    from ray_xt.process_env import prepare_process

    work = work_folder("ray_xt_bench_gpu_")
    layers, hidden, ffn, heads = GEOMETRY["smoke" if opts.smoke else opts.scale]
    vocab = 1000 if opts.smoke else XLMR_VOCAB
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(f"word{i} word{i + 1} word{i + 2}" for i in range(400)) + "\n")
    tokenizer = train_tokenizer([corpus], work / "model", vocab_size=300, seed=0)  # only its special ids matter
    config = XLMRobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=ffn, max_position_embeddings=514, type_vocab_size=1, num_labels=3,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).save_pretrained(work / "model")

    examples = opts.batch_size * opts.steps
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (examples, opts.seq_len), generator=generator)
    ids[:, 0], ids[:, -1] = tokenizer.bos_token_id, tokenizer.eos_token_id
    labels = torch.randint(0, 3, (examples,), generator=generator).tolist()
    for name, rows in (("train", examples), ("dev", min(examples, 16))):
        features = DatasetDict({"features": Dataset.from_dict({"input_ids": ids[:rows].tolist(), "label": labels[:rows]}),
                                "examples": Dataset.from_dict({"json": ["{}"] * rows})})
        features.save_to_disk(str(work / name))
        (work / name / "labels.json").write_text(json.dumps(["entailment", "neutral", "contradiction"]))
    tokens = examples * opts.seq_len
    bf16 = _use_bf16("auto")
    cuda = torch.cuda.is_available()

    prepare_process(opts.threads)
    spec = TrialSpec(model_path=str(work / "model"), tokenizer_path=str(work / "model"),
                     tasks=(TaskInputs("xnli", ("entailment", "neutral", "contradiction"), str(work / "train"),
                                       str(work / "dev")),),
                     epochs=1, batch_size=opts.batch_size, evals_per_epoch=1, warmup_ratio=0.1, weight_decay=0.01,
                     zero_stage=opts.zero_stage, bf16="auto", cpus=opts.threads, seed=0, stage_key="bench",
                     git_revision="bench", grad_accum=opts.grad_accum)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    session = MemorySession()
    train({"learning_rate": 1e-5}, spec, session)
    ray_rate = session.reports[-1]["examples_per_second"] * opts.seq_len
    ray_memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.set_num_threads(opts.threads)
    model = XLMRobertaForSequenceClassification.from_pretrained(work / "model")
    args = TrainingArguments(output_dir=str(work / "hf"), learning_rate=1e-5, max_steps=opts.steps,
                             per_device_train_batch_size=opts.batch_size // opts.grad_accum,
                             gradient_accumulation_steps=opts.grad_accum, warmup_steps=0.1, weight_decay=0.01,
                             max_grad_norm=1.0, bf16=bf16, eval_strategy="no", save_strategy="no", report_to=[],
                             use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=True, logging_strategy="no",
                             seed=0)
    clock = step_clock()  # the Trainer's optimiser steps alone, as ray_xt's rate counts its own (not setup)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": ids.tolist(),
                                                                                 "labels": labels}),
                      callbacks=[clock])
    trainer.train()
    hf_rate = tokens / clock.seconds
    hf_memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    per_token = flops_per_token(layers, hidden, non_embedding, opts.seq_len)
    device = torch.cuda.get_device_name() if cuda else f"CPU, {opts.threads} threads"
    result = {"date": today(), "machine": machine(), "device": device, "scale": "smoke" if opts.smoke else opts.scale,
              "seq_len": opts.seq_len, "batch": opts.batch_size, "grad_accum": opts.grad_accum, "bf16": bf16,
              "zero_stage": opts.zero_stage, "steps": opts.steps, "non_embedding_parameters": non_embedding,
              "flops_per_token": per_token, "ray_xt_tokens_per_s": round(ray_rate), "trainer_tokens_per_s": round(hf_rate),
              "ratio": round(ray_rate / hf_rate, 2), "ray_xt_peak_gib": ray_memory and round(ray_memory, 2),
              "trainer_peak_gib": hf_memory and round(hf_memory, 2)}
    if opts.peak_tflops:
        for side, rate in (("ray_xt", ray_rate), ("trainer", hf_rate)):
            result[f"{side}_mfu"] = round(per_token * rate / (opts.peak_tflops * 1e12), 4)
    print(json.dumps(result))
    mfu = (f" | MFU {result['ray_xt_mfu']:.1%} / {result['trainer_mfu']:.1%}" if opts.peak_tflops else "")
    memory = (f" | peak {result['ray_xt_peak_gib']} / {result['trainer_peak_gib']} GiB" if cuda else "")
    print(f"| {result['date']} | {device} | {result['scale']} L{layers} H{hidden}, S {opts.seq_len}, "
          f"{opts.batch_size} = {opts.batch_size // opts.grad_accum} x {opts.grad_accum}, bf16 {bf16}, ZeRO-{opts.zero_stage} "
          f"| {result['ray_xt_tokens_per_s']} tok/s | {result['trainer_tokens_per_s']} tok/s | **{result['ratio']}x**"
          f"{mfu}{memory} |")


if __name__ == "__main__":
    main()
