"""Which examples each step trains on: the step arithmetic (Schedule), shuffled or length-grouped epochs, the
mixture of several tasks (TaskSchedule), and a step's split into ranks and accumulation micro-batches."""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """A trial's step arithmetic, computed once: the study's ASHA horizon (``reports``) and the loop agree on it."""

    steps_per_epoch: int
    eval_every: int  # task steps between dev evaluations (and reports)
    total_steps: int  # task steps: what epochs count, reports and checkpoints are numbered by
    companion_ratio: float = 0.0  # the mlm condition's MLM steps per task step, on top of the task's

    @classmethod
    def of(cls, n_train: int, batch_size: int, epochs: float, evals_per_epoch: int,
           companion_ratio: float = 0.0) -> Schedule:
        """``n_train``: the scored tasks' training examples (never the MLM companion's text)."""
        steps_per_epoch = math.ceil(n_train / batch_size)
        return cls(steps_per_epoch, max(1, steps_per_epoch // evals_per_epoch),
                   max(1, round(steps_per_epoch * epochs)), companion_ratio)

    def companion_steps(self, task_steps: int) -> int:
        """MLM steps taken by the end of ``task_steps`` task steps: the fixed ratio, rounded down."""
        return math.floor(task_steps * self.companion_ratio + 1e-9)

    @property
    def optimizer_steps(self) -> int:
        """Every optimiser step of the trial (what the learning-rate schedule spans): task steps and MLM steps."""
        return self.total_steps + self.companion_steps(self.total_steps)

    @property
    def reports(self) -> int:
        """Evaluations a full trial makes (ASHA's ``max_t``): every ``eval_every`` steps and at the last step."""
        return math.ceil(self.total_steps / self.eval_every)

    def evaluates_after(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total_steps


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


GROUP_BATCHES = 50  # batches per length group (HF's LengthGroupedSampler: megabatches of 50)


def _grouped_epoch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[int]:
    """An epoch of the same shuffle as ``_epoch_order``, cut into groups of up to ``GROUP_BATCHES`` batches
    (fewer on small sets, at least 4 groups, as HF's ``LengthGroupedSampler``), each sorted by length
    (longest first) and cut into batches; the full batches are then shuffled, so the epoch has no long-to-short
    trend, and a short remainder batch stays last. Every example once per epoch, every batch ``batch_size``
    examples (the optimisation keeps its batch size and step count), but a batch pads to a similar length:
    on the micro tasks plain batches were 30-50% padding."""
    n = len(lengths)
    order = _epoch_order(n, seed, epoch)
    group = max(1, min(n // (batch_size * 4), GROUP_BATCHES)) * batch_size
    batches = []
    for start in range(0, n, group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    short = [b for b in batches if len(b) < batch_size]
    full = [b for b in batches if len(b) == batch_size]
    random.Random(seed * 100_003 + epoch + 1_000_000_007).shuffle(full)
    return [i for b in full + short for i in b]


def row_length(row) -> int:
    """Tokens of one feature row: its length, or its longest choice (multiple choice rows hold one per choice)."""
    if len(row) and not isinstance(row[0], numbers.Integral):
        return max(len(choice) for choice in row)
    return len(row)


class TaskSchedule:
    """Which task and which examples each step trains on, a pure function of (step, seed).

    One task: consecutive batches of a per-epoch shuffle. Several: each step draws a task with probability
    proportional to its training-set size (examples-proportional mixing) and takes that task's next batch
    of its own shuffled epochs. Replaying the draws makes a resumed trial continue exactly.
    """

    def __init__(self, sizes: list[int], batch_size: int, seed: int, lengths: list[list[int]] | None = None):
        """``lengths``: each task's example lengths, to train on length-grouped batches
        (``_grouped_epoch_order``); None: plain shuffled batches."""
        self.sizes, self.batch_size, self.seed, self.lengths = sizes, batch_size, seed, lengths
        self._cursor = [0] * len(sizes)  # batches taken from each task so far
        self._step = 0
        self._orders: dict[int, tuple[int, list[int]]] = {}  # task -> (epoch, its order): not rebuilt every step

    def _order(self, k: int, epoch: int) -> list[int]:
        cached = self._orders.get(k)
        if cached is None or cached[0] != epoch:
            seed = self.seed + 7919 * k
            order = (_grouped_epoch_order(self.lengths[k], self.batch_size, seed, epoch) if self.lengths
                     else _epoch_order(self.sizes[k], seed, epoch))
            cached = self._orders[k] = (epoch, order)
        return cached[1]

    def _task_at(self, step: int) -> int:
        if len(self.sizes) == 1:
            return 0
        return random.Random(self.seed * 1_000_003 + step).choices(range(len(self.sizes)), weights=self.sizes)[0]

    def batch(self, step: int) -> tuple[int, list[int]]:
        if step < self._step:
            raise ValueError(f"step {step} comes before step {self._step}: a schedule only goes forward")
        while self._step < step:  # replay (resume): count the batches each task gave before
            self._cursor[self._task_at(self._step)] += 1
            self._step += 1
        k = self._task_at(step)
        n = self.sizes[k]
        per_epoch = math.ceil(n / self.batch_size)
        epoch, offset = divmod(self._cursor[k], per_epoch)
        order = self._order(k, epoch)
        self._cursor[k] += 1
        self._step += 1
        return k, order[offset * self.batch_size : (offset + 1) * self.batch_size]



def micro_batches(share: list[int], grad_accum: int) -> list[list[int]]:
    """A rank's share of a batch cut into ``grad_accum`` micro-batches, always that many: DeepSpeed applies the
    optimiser every ``grad_accum`` micro-steps, so a short last batch of an epoch repeats examples rather than
    shift that boundary."""
    size = -(-len(share) // grad_accum)
    parts = [share[i * size:(i + 1) * size] for i in range(grad_accum)]
    return [p or [share[i % len(share)]] for i, p in enumerate(parts)]


def rank_share(idx: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's part of a global batch: every ``world_size``-th example, never empty (a short last batch
    of an epoch lends its first examples to ranks that would get none)."""
    share = idx[rank::world_size]
    return share or [idx[rank % len(idx)]]


