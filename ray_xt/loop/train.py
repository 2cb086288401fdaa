"""One rank's loop, readable on one screen: load, build the engine, resume, then per step a batch of this rank's
share in accumulation micro-batches, and at each evaluation dev scores, a checkpoint and a report."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from ray_xt.loop.contract import Hyper, PhaseClock, Session, TrialDiverged, TrialSpec
from ray_xt.loop.engine import (
    TaskPart,
    _engine,
    _load_model,
    _resume,
    _write_checkpoint,
    accumulated_step,
    held_memory,
    release_memory,
    to_device,
)
from ray_xt.loop.sampling import Schedule, TaskSchedule, micro_batches, rank_share, row_length


def train(spec: TrialSpec, hyper: Hyper, session: Session, clock: PhaseClock | None = None) -> None:
    """One rank's loop: ``spec`` the fixed settings, ``hyper`` the searched ones; ``session`` takes the reports.

    Gives back everything the trial held when it ends (finished, stopped or failed), so a process that runs
    trials one after another (a reused Tune actor, a warm trainer host) starts each with an empty device."""
    clock = clock or PhaseClock()
    clock.held_at_start = held_memory()
    try:
        _train(spec, hyper, session, clock)
    finally:
        release_memory()


def _train(spec: TrialSpec, hyper: Hyper, session: Session, clock: PhaseClock) -> None:
    import torch

    _quiet_libraries()
    clock.lap("imports")  # since entering the trial function: environment, torch/DeepSpeed/transformers imports
    started = time.perf_counter()
    torch.manual_seed(spec.seed)  # the fresh heads' initialisation
    parts, model, tokenizer = _load_model(spec, clock)
    sizes = [len(part.train["input_ids"]) for part in parts if part.family.scored]
    companion = any(not part.family.scored for part in parts)
    schedule = Schedule.of(sum(sizes), spec.batch_size, spec.epochs, spec.evals_per_epoch,
                           spec.mlm_ratio if companion else 0.0)
    engine = _engine(model, spec, hyper.learning_rate, schedule, session.world_size)
    try:
        _steps(engine, parts, tokenizer, spec, hyper, schedule, session, clock, started)
    finally:
        # the ZeRO optimizers hold the engine through gradient hooks on the parameters, closures the garbage
        # collector cannot see: destroy() removes them, or every trial's weights and optimizer states stay alive
        engine.destroy()


def _steps(engine, parts: list[TaskPart], tokenizer, spec: TrialSpec, hyper: Hyper, schedule: Schedule,
           session: Session, clock: PhaseClock, started: float) -> None:
    """The optimiser steps from the resumed one to the last, with dev evaluations, checkpoints and reports."""
    clock.lap("deepspeed_init")
    step = _resume(engine, session)
    clock.lap("resume")

    engine.train()
    losses: list[float] = []
    companion_losses: list[float] = []
    first_step_seconds = None
    train_seconds, trained_examples = 0.0, 0  # optimiser work only: the throughput `ray-xt plan` learns from
    loop_seconds = {"evaluate": 0.0, "checkpoint": 0.0, "report": 0.0}
    tasks = [part for part in parts if part.family.scored]
    companion = next((part for part in parts if not part.family.scored), None)  # the mlm condition's MLM text
    lengths = [[row_length(r) for r in part.train["input_ids"]] for part in tasks] if spec.group_by_length else None
    batches = TaskSchedule([len(part.train["input_ids"]) for part in tasks], spec.batch_size, spec.seed, lengths)
    text = TaskSchedule([len(companion.train["input_ids"])], spec.batch_size, spec.seed + 1) if companion else None

    def optimizer_step(part: TaskPart, idx: list[int]) -> float:
        micro = [to_device(part.family.batch(part.train, m, tokenizer.pad_token_id), engine.device)
                 for m in micro_batches(rank_share(idx, session.rank, session.world_size), spec.grad_accum)]

        def forward(batch):
            return (engine(**batch) if len(parts) == 1 else engine(part.name, **batch)).loss

        return accumulated_step(engine, micro, forward, _divergence_check(session, step, hyper))

    while step < schedule.total_steps and not session.stop_requested():
        step_started = time.perf_counter()
        k, idx = batches.batch(step)
        losses.append(optimizer_step(tasks[k], idx))
        trained_examples += len(idx)  # the global batch (every rank trained its share at once); MLM's below too
        step += 1
        if companion is not None and text is not None:  # MLM batches on top, at the fixed ratio
            for done in range(schedule.companion_steps(step - 1), schedule.companion_steps(step)):
                lines = text.batch(done)[1]
                companion_losses.append(optimizer_step(companion, lines))
                trained_examples += len(lines)
        train_seconds += time.perf_counter() - step_started
        if first_step_seconds is None:
            first_step_seconds = time.perf_counter() - started
            clock.lap("first_step")
        if schedule.evaluates_after(step):
            eval_started = time.perf_counter()
            scores = _dev_scores(parts, tokenizer.pad_token_id)
            loop_seconds["evaluate"] += time.perf_counter() - eval_started
            metrics = {
                "score": sum(scores.values()) / len(scores),  # multi-task: the mean of the tasks' dev scores
                **({f"score.{name}": v for name, v in scores.items()} if len(scores) > 1 else {}),
                "train_loss": sum(losses) / max(1, len(losses)),
                **({"mlm_loss": sum(companion_losses) / max(1, len(companion_losses)),
                    "mlm_steps": schedule.companion_steps(step)} if companion is not None else {}),
                "step": step,
                "epoch": step / schedule.steps_per_epoch,
                **hyper.as_config(),
                "seconds_to_first_step": first_step_seconds,
                "examples_per_second": trained_examples / max(train_seconds, 1e-9),
                "workers": session.world_size,
                **clock.metrics(),
                # where the time between optimiser steps goes, summed over the trial so far (a checkpoint's
                # and a report's own time only show in the next report): bench/orchestration_overhead.py
                "loop.train_s": train_seconds,
                **{f"loop.{k}_s": v for k, v in loop_seconds.items()},
            }
            losses, companion_losses = [], []
            with tempfile.TemporaryDirectory(prefix="ray_xt_ckpt_") as tmp:
                written = time.perf_counter()
                _write_checkpoint(Path(tmp), engine, tokenizer, spec, hyper, step, metrics, session.rank)
                reported = time.perf_counter()
                session.report(metrics, tmp, name=f"checkpoint_{step:08d}", final=step >= schedule.total_steps)
                loop_seconds["checkpoint"] += reported - written
                loop_seconds["report"] += time.perf_counter() - reported


def _quiet_libraries() -> None:
    from deepspeed.utils import logger as ds_logger
    from transformers.utils import logging as hf_logging

    ds_logger.setLevel(logging.WARNING)
    hf_logging.set_verbosity_error()


def _divergence_check(session: Session, step: int, hyper: Hyper):
    """Raises TrialDiverged (and leaves the session's marker, so no retry trains again) on a non-finite loss."""
    def check(loss) -> None:
        if not session.all_finite(loss):
            reason = f"training loss became {loss.item()} at step {step + 1} (learning_rate={hyper.learning_rate:.3g})"
            if session.marker is not None and session.rank == 0:
                session.marker.parent.mkdir(parents=True, exist_ok=True)
                session.marker.write_text(json.dumps({"reason": reason}) + "\n")
            raise TrialDiverged(reason)
    return check


def _dev_scores(parts: list[TaskPart], pad_id: int) -> dict[str, float]:
    """Every scored task's dev score. Every rank evaluates the whole dev set: under ZeRO-3 each forward needs all
    ranks to gather the parameters, so ranks must run the same forwards."""
    return {part.name: part.family.evaluate(part.model, part.dev, part.dev_examples, pad_id, part.spec, "en").score
            for part in parts if part.family.scored}  # the mlm condition's text is trained, never scored



