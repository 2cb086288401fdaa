"""The whole study file: its sections, the checks across them, and each task's trial settings at each scale."""

from __future__ import annotations

from pydantic import Field, ValidationError, field_validator, model_validator

from ray_xt.config.resolution import ResolvedTrial
from ray_xt.config.sections import (
    DataConfig,
    IntermediateConfig,
    MicroWorldConfig,
    PowerConfig,
    ScaleOverride,
    SchedulerConfig,
    SearchConfig,
    SequentialSeeds,
    TargetConfig,
    TaskOverride,
    TrackingConfig,
    TrialConfig,
)
from ray_xt.config.strict import Strict, _accepted, known
from ray_xt.scales import SCALES
from ray_xt.tasks.registry import TASKS


class StudyConfig(Strict):
    # 100 characters: a folder name of its own, and inside a Tune trial's path (itself ~150 characters) well within
    # the 255 bytes a file name may have
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100, description="study name (used in paths and MLflow)")
    description: str = Field("", description="free text about the study, for its readers")
    data: DataConfig = Field(default_factory=DataConfig)
    micro: MicroWorldConfig = Field(default_factory=MicroWorldConfig)
    scales: list[str] = Field(min_length=1, description="model scales to compare")
    intermediate: IntermediateConfig = Field(default_factory=IntermediateConfig)
    target: TargetConfig
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=1000,
                             description="fine-tuning seeds: every stage runs once per seed; or {min: 3, max: 10}: "
                             "seeds 0.. added one round at a time while a primary contrast is undecided")
    sequential: SequentialSeeds | None = Field(None, description="set by seeds: {min, max} (seeds then lists 0..max-1, "
                                               "the most that may run)")
    trial: TrialConfig = Field(default_factory=TrialConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    max_failures: int = Field(1, ge=0, le=100, description="retries of a failed trial (Tune FailureConfig)")
    parallel_stages: int = Field(2, ge=1, le=1000, description="independent stages running at once (each its own sweep)")
    warm_trainers: bool = Field(True, description="one-process CPU trials train in warm processes kept for the "
                                "whole study (ray_xt.trainer_hosts) instead of new ones every sweep")
    scale_overrides: dict[str, ScaleOverride] = Field(
        default_factory=dict, description="per-scale trial resources and micro-batch size, e.g. {xlmr-base: {gpus: 1}}")
    task_overrides: dict[str, TaskOverride] = Field(
        default_factory=dict, description="per-task changes to trial: settings, e.g. {udpos: {epochs: 10}}")
    model_paths: dict[str, str] = Field(
        default_factory=dict, description="scale -> local model folder (save_pretrained layout, tokenizer beside it) "
        "used instead of the scale's hub id, e.g. {xlmr-large: /mnt/models/xlm-roberta-large}; without it a hub scale "
        "loads from $RAY_XT_MODEL_MIRROR/<hub id> when that is set, else from the hub")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    storage: str = Field("results", description="study state, features, checkpoints, predictions and reports: a "
                         "folder (on a cluster one every node mounts) or a URI Ray Tune accepts (s3://, gs://, "
                         "file:///...)")

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, v: str) -> str:
        if v in (".", ".."):
            raise ValueError(f"{v!r} names a folder outside the study's own (<storage>/<name>); give a name such as "
                             "my_study")
        return v

    @model_validator(mode="before")
    @classmethod
    def _sequential_seeds(cls, data):
        """``seeds: {min, max, ...}`` becomes ``sequential`` and the seeds that may run, 0..max-1."""
        if isinstance(data, dict) and isinstance(data.get("seeds"), dict):
            if data.get("sequential") is not None:
                raise ValueError("seeds: {min, max} and sequential: given both; write seeds: {min, max} only")
            try:
                rule = SequentialSeeds.model_validate(data["seeds"])
            except ValidationError as err:  # named as the study file spells it
                raise ValueError("; ".join(f"seeds{''.join('.' + str(p) for p in e['loc'])}: {e['msg']}"
                                           for e in err.errors())) from None
            data = {**data, "sequential": rule, "seeds": list(range(rule.max))}
        return data

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 0 <= s <= 2**31 - 1]
        if bad:
            raise ValueError(f"{bad} outside 0..{2**31 - 1}")
        return v

    @field_validator("storage")
    @classmethod
    def _storage_usable(cls, v: str) -> str:
        from ray_xt.storage import storage_problem

        return _accepted(v, storage_problem(v), "storage: ")

    @field_validator("scales")
    @classmethod
    def _scales_known(cls, v: list[str]) -> list[str]:
        return known(v, list(SCALES), "scale(s)")

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.data.source == "micro":
            hub = [s for s in self.scales if not SCALES[s].is_micro]
            if hub:
                raise ValueError(f"scales: {hub} need the model hub; with data.source 'micro' use micro-* scales")
        stray = sorted(set(self.model_paths) - set(self.scales))
        if stray:
            raise ValueError(f"model_paths: {stray} are not scales of this study; valid: {sorted(self.scales)}")
        micro_paths = sorted(s for s in self.model_paths if SCALES[s].is_micro)
        if micro_paths:
            raise ValueError(f"model_paths: {micro_paths} are micro scales, built by ray-xt itself")
        if "mlm" in self.intermediate.conditions:
            if self.data.source == "micro" and self.intermediate.mlm_corpus is not None:
                raise ValueError("intermediate.mlm_corpus: the micro world's own corpora are used; remove it")
            if self.data.source != "micro" and self.intermediate.mlm_corpus is None:
                raise ValueError("intermediate.mlm_corpus: required for the 'mlm' condition on real data, e.g. "
                                 "{dataset: wikimedia/wikipedia, config: '20231101.{lang}'}")
        if self.sequential is not None and not self.intermediate.conditions:
            raise ValueError("seeds: {min, max} adds seeds while a primary contrast is undecided, and this study has "
                             "none (no intermediate condition); give seeds as a list, e.g. [0, 1, 2]")
        if self.intermediate.tasks and not self.intermediate.conditions:
            raise ValueError("intermediate.conditions: empty, but intermediate.tasks are given")
        study_tasks = set(self.intermediate.tasks) | set(self.target.tasks)
        unknown = sorted(set(self.task_overrides) - study_tasks)
        if unknown:
            raise ValueError(f"task_overrides: {unknown} are not tasks of this study; valid: {sorted(study_tasks)}")
        for task in self.target.tasks:
            layer = self.trial_for(task).retrieval_layer
            if TASKS[task].family == "retrieval" and layer is not None:
                deep = [s for s in self.scales if layer > SCALES[s].num_layers]
                if deep:
                    where = "task_overrides." + task if self.task_overrides.get(task) and \
                        self.task_overrides[task].retrieval_layer is not None else "trial"
                    raise ValueError(f"{where}.retrieval_layer: {layer} is deeper than scale(s) "
                                     f"{ {s: SCALES[s].num_layers for s in deep} } (their layer counts); use "
                                     f"1..{min(SCALES[s].num_layers for s in self.scales)}")
        for task in sorted(study_tasks):
            t = self.trial_for(task)
            if TASKS[task].family == "span_qa" and t.doc_stride >= t.max_seq_length:
                where = "task_overrides." + task if self.task_overrides.get(task) else "trial"
                raise ValueError(f"{where}.doc_stride: {t.doc_stride} (task {task}) must be smaller than max_seq_length "
                                 f"({t.max_seq_length}): a context window moves on by max_seq_length minus the question "
                                 "and doc_stride tokens, and would never move; XTREME uses 128 with 384")
        stray = sorted(set(self.scale_overrides) - set(self.scales))
        if stray:
            raise ValueError(f"scale_overrides: {stray} are not scales of this study; valid: {self.scales}")
        for scale in self.scales:
            workers = self.workers_for(scale)
            for task in sorted(study_tasks):
                resolved = self.resolved_trial(task, scale)
                if resolved.offload_optimizer and resolved.zero_stage == 0:
                    raise ValueError(f"trial.offload_optimizer (task {task}, scale {scale}) needs a ZeRO stage of 1, 2 "
                                     f"or 3 (DeepSpeed offloads ZeRO's optimizer partitions); set trial.zero_stage")
                batch = self.batch_size_for(task, scale)
                accum = self.grad_accum_for(task, scale)
                if batch % (workers * accum):
                    parts = f"{workers} workers" + (f" x {accum} accumulation micro-batches" if accum > 1 else "")
                    raise ValueError(
                        f"trial.batch_size: {batch} (task {task}, scale {scale}) does not split evenly over {parts} "
                        f"per trial; use a multiple of {workers * accum} or change trial.workers"
                        + (" / grad_accum" if accum > 1 else ""))
        available = self.available_languages
        if self.intermediate.languages is not None:
            zero_shot = {lang for t in self.target.tasks for lang in self.languages_for(t)} - {"en"}
            bad = [lang for lang in self.intermediate.languages if lang not in zero_shot]
            if bad:
                raise ValueError(f"intermediate.languages: {bad} are not zero-shot languages of the study's target "
                                 f"tasks; valid: {sorted(zero_shot)}")
        if self.target.languages is not None:
            bad = [lang for lang in self.target.languages if lang not in available]
            if bad:
                raise ValueError(f"target.languages: {bad} not available; valid: {sorted(available)}")
            if "en" not in self.target.languages:
                raise ValueError("target.languages: must include 'en' (model selection uses English dev)")
        return self

    def resolved_trial(self, task: str, scale: str) -> ResolvedTrial:
        """What a task's trials at a scale run with: trial_for(task) with every per-scale default filled in
        (batch_size, zero_stage, grad_accum, offload_optimizer, cpus, gpus, workers)."""
        t, s = self.trial_for(task), SCALES[scale]
        cpus, gpus = self.resources_for(scale)
        resolved = {**t.model_dump(), "batch_size": self.batch_size_for(task, scale),
                    "grad_accum": self.grad_accum_for(task, scale),
                    "zero_stage": t.zero_stage if t.zero_stage is not None else s.zero_stage,
                    "offload_optimizer": t.offload_optimizer if t.offload_optimizer is not None else s.offload_optimizer,
                    "cpus": cpus, "gpus": gpus, "workers": self.workers_for(scale)}
        return ResolvedTrial(**resolved)

    def batch_size_for(self, task: str, scale: str) -> int:
        """The effective (global) batch of a task's trials at a scale: the study's batch_size, else the scale's."""
        return self.trial_for(task).batch_size or SCALES[scale].train_batch_size

    def workers_for(self, scale: str) -> int:
        """Ray Train workers per trial of a scale (1: the trial is one process)."""
        override = self.scale_overrides.get(scale)
        return (override and override.workers) or self.trial.workers or SCALES[scale].workers_per_trial

    def resources_for(self, scale: str) -> tuple[float, float]:
        """CPUs and GPUs of a trial process of a scale (of each worker, for worker-group trials): the scale's
        override, else trial:, else the scale's own."""
        s, t, o = SCALES[scale], self.trial, self.scale_overrides.get(scale) or ScaleOverride()
        cpus = o.cpus if o.cpus is not None else t.cpus if t.cpus is not None else s.cpus_per_trial
        gpus = o.gpus if o.gpus is not None else t.gpus if t.gpus is not None else s.gpus_per_trial
        return cpus, gpus

    def grad_accum_for(self, task: str, scale: str) -> int:
        """Micro-batches per optimiser step of a task's trials at a scale: the study's grad_accum where given, else
        the fewest that keep a rank's micro-batch within the scale's micro_batch_tokens and split its share of the
        batch evenly (1 where the scale has no limit)."""
        t = self.trial_for(task)
        if t.grad_accum is not None:
            return t.grad_accum
        override = self.scale_overrides.get(scale)
        budget = (override and override.micro_batch_tokens) or SCALES[scale].micro_batch_tokens
        if budget is None:
            return 1
        share = self.batch_size_for(task, scale) // self.workers_for(scale)
        if share < 1:
            return 1  # batch_size smaller than the workers: refused by the batch-split check
        largest = max(1, budget // t.max_seq_length)  # examples per micro-batch
        return next(a for a in range(-(-share // largest), share + 1) if share % a == 0)

    def trial_for(self, task: str) -> TrialConfig:
        """The trial settings of a task's stages: trial: with the task's overrides applied."""
        override = self.task_overrides.get(task)
        if override is None:
            return self.trial
        return self.trial.model_copy(update=override.model_dump(exclude_none=True))

    @property
    def available_languages(self) -> set[str]:
        if self.data.source == "micro":
            return set(self.micro.languages)
        return set.intersection(*(set(TASKS[t].languages) | {"en"} for t in self.target.tasks))

    def languages_for(self, task: str) -> list[str]:
        """Zero-shot evaluation languages of a target task, English first (retrieval: the non-English side)."""
        langs = self.target.languages or (
            self.micro.languages if self.data.source == "micro" else list(TASKS[task].languages)
        )
        others = sorted(lang for lang in langs if lang != "en")
        return others if TASKS[task].family == "retrieval" else ["en"] + others  # retrieval pairs X with English




def translate_languages(cfg: StudyConfig) -> list[str]:
    """The languages of target-language intermediate data: intermediate.languages, else every zero-shot language
    of the study's target tasks."""
    if cfg.intermediate.languages is not None:
        return sorted(set(cfg.intermediate.languages))
    return sorted({lang for t in cfg.target.tasks for lang in cfg.languages_for(t)} - {"en"})
