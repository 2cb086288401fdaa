"""The training loop of one trial rank, without Ray: a DeepSpeed engine around an XLM-R model (one task, or
several sharing one encoder), reporting at each dev evaluation to a ``Session``.

Lean on purpose (not the HF Trainer): each report carries a checkpoint holding the DeepSpeed engine state (a
retried trial resumes exactly where it stopped) and the encoder in ``save_pretrained`` form (what downstream
stages load). Where reports go is the session's business: Ray Tune (``ray_xt.trial``), a Ray Train worker
group, a warm trainer host (``ray_xt.trainer_hosts``), or a list in a test or benchmark. Nothing here imports
Ray; torch, DeepSpeed and transformers are imported when a loop runs.
"""

from ray_xt.loop.contract import (
                                  FROM_SETTINGS,
                                  Hyper,
                                  MemorySession,
                                  OneProcessSession,
                                  PhaseClock,
                                  Resumable,
                                  Session,
                                  TaskInputs,
                                  TrialDiverged,
                                  TrialSpec,
)
from ray_xt.loop.engine import (
                                  MultiTaskModel,
                                  TaskPart,
                                  _use_bf16,
                                  accumulated_step,
                                  deepspeed_config,
                                  engine_zero_stage,
                                  gathered_state_dict,
                                  held_memory,
                                  release_memory,
                                  to_device,
)
from ray_xt.loop.sampling import (
                                  GROUP_BATCHES,
                                  Schedule,
                                  TaskSchedule,
                                  _epoch_order,
                                  _grouped_epoch_order,
                                  micro_batches,
                                  rank_share,
                                  row_length,
)
from ray_xt.loop.train import train

__all__ = ["FROM_SETTINGS", "GROUP_BATCHES", "Hyper", "Hyper", "MemorySession", "MultiTaskModel", "OneProcessSession", "PhaseClock",
           "Resumable", "Schedule", "Session", "TaskInputs", "TaskPart", "TaskSchedule", "TrialDiverged", "TrialSpec",
           "_epoch_order", "_grouped_epoch_order", "_use_bf16", "accumulated_step", "deepspeed_config",
           "engine_zero_stage", "gathered_state_dict", "held_memory", "micro_batches", "rank_share", "release_memory",
           "row_length", "to_device", "train"]
