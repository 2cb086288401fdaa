"""Typed experiment (study) configuration: one YAML per study, validated before Ray starts.

Fixed trial settings live under ``trial:``; search ranges under ``search:``.
Every error names the field path and what would be valid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ray_xt.micro.codes import LANGUAGE_CODES
from ray_xt.scales import SCALES
from ray_xt.tasks.registry import TASKS


class ConfigError(ValueError):
    """A study file is invalid; the message lists every problem with its field path."""


def _takes_bool(annotation) -> bool:
    """Whether a field of this type may hold true/false (YAML booleans are not numbers here)."""
    if annotation is bool:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    if get_origin(annotation) in (Union, getattr(__import__("types"), "UnionType", Union)):
        return any(_takes_bool(a) for a in get_args(annotation))
    return False


def _item_type(annotation):
    """The item type of a list field (through Optional), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is list:
            return (get_args(candidate) or (None,))[0]
    return None


class Strict(BaseModel):
    """Rejects unknown keys with the list of valid ones (pydantic's own message omits it), booleans where a number
    or text is expected (pydantic would read `epochs: true` as 1), duplicates in lists, and inf/NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data):
        if isinstance(data, dict):
            unknown = sorted(set(map(str, data)) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown key(s) {unknown}; valid keys: {sorted(cls.model_fields)}")
            problems = []
            for key, value in data.items():
                annotation = cls.model_fields[key].annotation
                if isinstance(value, bool) and not _takes_bool(annotation):
                    problems.append(f"{key}: {str(value).lower()} is not a {_kind(annotation)}")
                elif isinstance(value, list):
                    item = _item_type(annotation)
                    if any(isinstance(v, bool) for v in value) and item is not None and not _takes_bool(item):
                        problems.append(f"{key}: {value} holds true/false where a {_kind(item)} is expected")
                    hashable = [v for v in value if isinstance(v, (str, int, float))]
                    repeated = sorted({str(v) for v in hashable if hashable.count(v) > 1})
                    if repeated:
                        problems.append(f"{key}: {repeated} given more than once; list each once")
            if problems:
                raise ValueError("; ".join(problems))
        return data


def _accepted(value: str, problem: str | None, prefix: str) -> str:
    """``value`` when its check found no problem; else the problem, less the field name pydantic puts before it."""
    if problem:
        raise ValueError(problem.removeprefix(prefix))
    return value


def _kind(annotation) -> str:
    names = {int: "whole number", float: "number", str: "text", Path: "path"}
    for candidate in (annotation, *get_args(annotation)):
        if candidate in names:
            return names[candidate]
    return "value of this field"


class MicroWorldConfig(Strict):
    """The offline micro world (used when data.source is 'micro')."""

    seed: int = Field(13, ge=0, le=2**32 - 1, description="world seed: same seed, byte-identical world")
    languages: list[str] = Field(
        default_factory=lambda: ["en", "qca", "qcy", "qso", "qgr", "qka", "qhy"],
        description="world languages; 'en' must be included",
    )
    corpus_sentences: int = Field(6000, ge=100, le=10_000_000, description="monolingual pretraining sentences per language")
    train_size: int = Field(8000, ge=10, le=10_000_000, description="training examples per task (and per translation)")
    dev_size: int = Field(300, ge=10, le=1_000_000, description="dev examples per task and language")
    test_size: int = Field(300, ge=10, le=1_000_000, description="test examples per task and language")
    translation_noise: float = Field(0.05, ge=0, le=1, description="word error rate of translated training data")
    vocab_size: int = Field(2000, ge=100, le=1_000_000, description="SentencePiece vocabulary size (an upper bound)")
    pretrain_steps: int | None = Field(None, ge=1, le=10_000_000, description="MLM steps for every micro scale (default: the scale's)")
    cache_dir: Path | None = Field(None, description="where worlds and micro models are cached (default ~/.cache/ray_xt)")

    @field_validator("languages")
    @classmethod
    def _languages_known(cls, v: list[str]) -> list[str]:
        unknown = [code for code in v if code not in LANGUAGE_CODES]
        if unknown:
            raise ValueError(f"unknown micro-world language(s) {unknown}; valid: {sorted(LANGUAGE_CODES)}")
        if "en" not in v:
            raise ValueError("must include 'en' (the source language of zero-shot transfer)")
        return v


class DataConfig(Strict):
    """Where the task data come from: the micro world, a local XTREME download or the HF hub."""

    source: Literal["micro", "xtreme_dir", "hub"] = Field(
        "micro", description="'micro': the generated offline world; 'xtreme_dir': a local XTREME download; "
        "'hub': fetched from the HF hub into root (files already there are kept)",
    )
    root: Path | None = Field(None, description="xtreme_dir: folder laid out as xtreme's download_data.sh leaves it; "
                              "hub: where fetched files are written (default ~/.cache/ray_xt/xtreme)")
    hub_mirror: Path | None = Field(None, description="hub: load hub id org/name from <hub_mirror>/org/name, a snapshot "
                                    "of the dataset repo (`huggingface-cli download --repo-type dataset org/name "
                                    "--local-dir <hub_mirror>/org/name`), instead of the hub (default: "
                                    "$RAY_XT_HUB_MIRROR, else the hub)")
    translations: Path | None = Field(None, description="a copy of XTREME's translations bucket (XNLI/translate-train/, "
                                      "SQuAD/translate-train/, SQuAD/translate-dev/): target-language intermediate data")
    udpos_hub: bool = Field(False, description="hub: fetch UD-POS from google/xtreme's udpos configs, its loader's own "
                            "build of UD 2.5 (not XTREME's: its multiword tokens and text-less sentences may differ; "
                            "el, fr and zh merge other treebanks and are refused anyway); false: UD-POS must be "
                            "XTREME's own files under root (download_data.sh)")

    @model_validator(mode="after")
    def _root_exists(self):

        if self.source == "xtreme_dir":
            if self.root is None:
                raise ValueError("root: required when source is 'xtreme_dir'")
            if not Path(self.root).is_dir():
                raise ValueError(f"root: folder {str(self.root)!r} does not exist (run xtreme's download_data.sh there)")
        return self

    def data_root(self) -> Path:
        if self.root is not None:
            return Path(self.root).expanduser()
        from ray_xt.storage import default_cache_dir

        return default_cache_dir() / "xtreme"


class MLMCorpus(Strict):
    """Where the `mlm` condition's target-language text comes from on real data: a hub dataset (or its mirror)
    with a config per language."""

    dataset: str = Field(description="hub id of a text corpus, e.g. wikimedia/wikipedia")
    config: str = Field(description="its config per language, with {lang}, e.g. 20231101.{lang}")
    split: str = Field("train", description="split to read")
    column: str = Field("text", description="text column (split into lines)")


class IntermediateConfig(Strict):
    """Intermediate tasks and the conditions (languages of their data) each is trained in."""

    tasks: list[str] = Field(default_factory=list, description="intermediate tasks (e.g. mnli, qqp)")
    conditions: list[Literal["en", "translate-train", "translate-train-each", "mlm"]] = Field(
        default_factory=lambda: ["en"],
        description="'en': English intermediate data; 'translate-train': the same data translated into all "
        "target languages (one size-matched mixture); 'translate-train-each': one intermediate model per target "
        "language, trained on that language's translation and evaluated on it; 'mlm': English intermediate data "
        "with masked language modelling on target-language text mixed in (intermediate.mlm_ratio MLM batches per "
        "task batch, on top of the task's own steps; the paper's continued multilingual MLM). The 'none' baseline "
        "always runs.",
    )
    mlm_corpus: MLMCorpus | None = Field(None, description="the 'mlm' condition's text on real data (the micro world "
                                         "uses its own monolingual corpora)")
    mlm_lines: int = Field(2000, ge=10, le=10_000_000, description="text lines per language for the 'mlm' condition, "
                           "sampled at random (search.seed) from the corpus")
    mlm_ratio: float = Field(0.5, gt=0, le=10, description="the 'mlm' condition's MLM batches per task batch: the task "
                             "takes exactly the steps of its 'en' twin and MLM batches come on top at this fixed ratio "
                             "(ray_xt's choice; the paper's mixing proportion is unverified)")
    multi_task: bool = Field(False, description="also train one encoder on all intermediate tasks at once (English, "
                             "one head per task, examples-proportional sampling) as a further upstream")
    languages: list[str] | None = Field(
        None, description="languages of the target-language conditions' intermediate data (translate-train, "
        "translate-train-each); default: every zero-shot language of the study's target tasks. Real data: XTREME "
        "translated MNLI into the 14 XNLI languages and SQuAD into 10 XQuAD ones (see README, Tasks and data)")

    @field_validator("tasks")
    @classmethod
    def _tasks_known(cls, v: list[str]) -> list[str]:
        valid = sorted(t for t, s in TASKS.items() if s.role == "intermediate")
        bad = [t for t in v if t not in valid]
        if bad:
            raise ValueError(f"unknown intermediate task(s) {bad}; valid: {valid}")
        return v


class TargetConfig(Strict):
    """XTREME target tasks, fine-tuned on English and evaluated zero-shot."""

    tasks: list[str] = Field(min_length=1, description="XTREME target tasks (e.g. pawsx, xnli)")
    languages: list[str] | None = Field(None, description="zero-shot evaluation languages (default: all of the task's)")

    @field_validator("tasks")
    @classmethod
    def _tasks_known(cls, v: list[str]) -> list[str]:
        valid = sorted(t for t, s in TASKS.items() if s.role == "target")
        bad = [t for t in v if t not in valid]
        if bad:
            raise ValueError(f"unknown target task(s) {bad}; valid: {valid}")
        return v


class TrialConfig(Strict):
    """Fixed settings of every fine-tuning trial."""

    epochs: float = Field(2.0, gt=0, le=1000, description="passes over the training data")
    batch_size: int | None = Field(None, ge=1, le=65536, description="per-trial batch size (default: the scale's)")
    max_seq_length: int = Field(128, ge=8, le=4096, description="tokens per example after truncation")
    doc_stride: int = Field(128, ge=1, le=4096, description="span QA: overlap of consecutive context windows (tokens)")
    retrieval_layer: int | None = Field(None, ge=1, le=1000, description="retrieval: hidden layer mean-pooled into sentence "
                                        "embeddings (default: 7/12 of the depth, XTREME's choice for 12 layers)")
    max_train_examples: int | None = Field(None, ge=1, le=10**9, description="cap on training examples (None: all)")
    max_eval_examples: int | None = Field(None, ge=1, le=10**9, description="cap on dev examples per language")
    evals_per_epoch: int = Field(2, ge=1, le=1000, description="dev evaluations (and Tune reports) per epoch")
    grad_accum: int | None = Field(None, ge=1, le=1024, description="gradient accumulation: an optimiser step sums "
                                   "the gradients of grad_accum micro-batches of batch_size / (workers x grad_accum) "
                                   "examples per rank, so batch_size stays the effective batch (jiant's XTREME runs: "
                                   "4 x 8 = 32; QA 4 x 4 = 16) while a large model's micro-batch fits the device "
                                   "(default: as few as keep each micro-batch within the scale's micro_batch_tokens)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of the steps the learning rate warms up over")
    weight_decay: float = Field(0.01, ge=0, le=10, description="AdamW weight decay (not on biases and LayerNorms)")
    zero_stage: int | None = Field(None, ge=0, le=3, description="DeepSpeed ZeRO stage (default: the scale's)")
    offload_optimizer: bool | None = Field(None, description="keep the fp32 master weights and Adam's moments in host "
                                           "memory (DeepSpeed ZeRO-Offload, DeepSpeedCPUAdam; needs zero_stage >= 1): "
                                           "what lets XLM-R XL fit 24 GB GPUs (default: the scale's; docs/memory.md)")
    bf16: Literal["auto", True, False] = Field("auto", description="bf16 on GPUs that support it; fp32 on CPU")
    cpus: float | None = Field(None, gt=0, le=1024, description="CPUs per trial, per worker when workers > 1 (default: the scale's)")
    gpus: float | None = Field(None, ge=0, le=64, description="GPUs per trial, per worker when workers > 1 (default: the scale's)")
    workers: int | None = Field(None, ge=1, le=1024, description="data-parallel Ray Train workers per trial, one DeepSpeed "
                                "rank each; batch_size is split across them (default: the scale's)")
    placement: Literal["STRICT_PACK", "PACK", "SPREAD"] = Field(
        "STRICT_PACK", description="where a worker-group trial's ranks run (Ray placement strategy): STRICT_PACK all on "
        "one node (fast links between GPUs; a group that fits no single node never starts), PACK one node where "
        "possible, SPREAD one rank per node where possible")
    freeze_embeddings: bool = Field(False, description="keep the encoder's embedding layer fixed while fine-tuning "
                                    "(English-only training then cannot move English words away from the "
                                    "other languages'; Wu & Dredze 2019)")
    group_by_length: bool = Field(False, description="train on batches of examples of similar length (HF's "
                                  "group_by_length: shuffled groups of up to 50 batches, each sorted by length): "
                                  "less padding, the same batch size and steps per epoch; false (the default, "
                                  "as the paper's runs): plain shuffled batches")


# where a trial runs is per scale (scale_overrides), not per task: a task cannot change it
PLACEMENT_FIELDS = ("cpus", "gpus", "workers")
# trial settings used where a stage's features are made and its checkpoints evaluated, not by the training loop
FEATURE_FIELDS = ("max_seq_length", "doc_stride", "retrieval_layer", "max_train_examples", "max_eval_examples")


def _task_override_model() -> type[Strict]:
    """TrialConfig with every field optional (None: the study's trial: value) and the same bounds and descriptions,
    placement left out."""
    from pydantic import create_model
    from pydantic.fields import FieldInfo

    fields: dict[str, Any] = {
        name: (info.annotation | None, FieldInfo.merge_field_infos(info, default=None))
        for name, info in TrialConfig.model_fields.items() if name not in PLACEMENT_FIELDS
    }
    return create_model("TaskOverride", __base__=Strict, __doc__="Per-task trial settings (the paper's protocol "
                        "differs by task: epochs, sequence length...): any trial: setting but placement.", **fields)


if TYPE_CHECKING:  # a model class built at import: type checkers see a Strict model
    class TaskOverride(Strict): ...
else:
    TaskOverride = _task_override_model()


class ScaleOverride(Strict):
    """Per-scale placement and memory fit, e.g. {xlmr-base: {gpus: 1}, xlmr-large: {micro_batch_tokens: 4096}}:
    how a scale's trials use devices, never what they compute (the effective batch is batch_size)."""

    cpus: float | None = Field(None, gt=0, le=1024, description="CPUs per trial (per worker) of this scale")
    gpus: float | None = Field(None, ge=0, le=64, description="GPUs per trial (per worker) of this scale; 0.5: two trials "
                               "share a GPU")
    workers: int | None = Field(None, ge=1, le=1024, description="data-parallel Ray Train workers per trial of this scale")
    micro_batch_tokens: int | None = Field(None, ge=8, le=10**8, description="the largest micro-batch (examples x "
                                           "max_seq_length) a device takes at once; larger shares are accumulated")


class LogRange(Strict):
    """A range searched log-uniformly."""

    low: float = Field(gt=0, le=10, description="lowest value (sampled log-uniformly)")
    high: float = Field(gt=0, le=10, description="highest value")

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class SearchConfig(Strict):
    """What Optuna searches (log-uniform learning rate) and how many trials a stage runs."""

    learning_rate: LogRange = Field(default_factory=lambda: LogRange(low=1e-5, high=1e-4))
    initial_learning_rate: float | None = Field(
        None, gt=0, le=10, description="first point to evaluate (e.g. the paper's value); must lie in the range"
    )
    num_samples: int = Field(4, ge=1, le=10_000, description="trials per stage")
    max_concurrent: int = Field(2, ge=1, le=10_000, description="trials running at once per stage (ConcurrencyLimiter)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="TPE sampler seed")

    @model_validator(mode="after")
    def _initial_in_range(self):
        lr = self.initial_learning_rate
        if lr is not None and not (self.learning_rate.low <= lr <= self.learning_rate.high):
            raise ValueError(
                f"initial_learning_rate: {lr} lies outside learning_rate "
                f"[{self.learning_rate.low}, {self.learning_rate.high}]"
            )
        return self


class SchedulerConfig(Strict):
    """ASHA early stopping on the dev score reported at each evaluation."""

    enabled: bool = Field(True, description="ASHA early stopping of weak trials (false: every trial runs to the end)")
    grace_period: int = Field(1, ge=1, le=100_000, description="evaluations before a trial may be stopped")
    reduction_factor: float = Field(2.0, gt=1, le=100, description="ASHA keeps 1/reduction_factor of trials per rung")


class TrackingConfig(Strict):
    """Where MLflow records the study."""

    uri: str = Field("sqlite:///mlruns.db", description="MLflow tracking URI (SQLite file or http://server)")
    experiment: str | None = Field(None, description="MLflow experiment name (default: ray_xt/<study name>)")

    @field_validator("uri")
    @classmethod
    def _a_store_mlflow_has(cls, v: str) -> str:
        from ray_xt.tracking_uri import tracking_problem

        return _accepted(v, tracking_problem(v), "tracking URI ")


class PowerConfig(Strict):
    """What `ray-xt plan` assumes about seed-to-seed noise when it says what the study's seeds can detect."""

    pilot: str | None = Field(None, description="a study file whose finished stages give each target's seed-to-seed "
                              "sd of the primary contrasts (a pilot: one scale, three seeds, the same targets), "
                              "read from the storage it names; used where this study has fewer than two seeds of a "
                              "contrast finished")
    default_sd: float = Field(2.17, gt=0, le=100, description="seed-to-seed sd (points) of a language-averaged "
                              "contrast where neither this study nor the pilot has measured it; 2.17 is the "
                              "micro-world demo's pooled sd (docs/statistics.md), a placeholder for real models")
    wanted_power: float = Field(0.8, gt=0, lt=1, description="the power the detectable difference is computed for")


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
                             description="fine-tuning seeds: every stage runs once per seed")
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
        bad = [s for s in v if s not in SCALES]
        if bad:
            raise ValueError(f"unknown scale(s) {bad}; valid: {list(SCALES)}")
        return v

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

    def resolved_trial(self, task: str, scale: str) -> TrialConfig:
        """What a task's trials at a scale run with: trial_for(task) with every per-scale default filled in
        (batch_size, zero_stage, grad_accum, cpus, gpus, workers). The one place a trial's settings come from:
        the stage's sweep settings and the trial's TrialSpec are both read off it."""
        t = self.trial_for(task)
        cpus, gpus = self.resources_for(scale)
        return t.model_copy(update={
            "batch_size": self.batch_size_for(task, scale), "grad_accum": self.grad_accum_for(task, scale),
            "zero_stage": t.zero_stage if t.zero_stage is not None else SCALES[scale].zero_stage,
            "offload_optimizer": (t.offload_optimizer if t.offload_optimizer is not None
                                  else SCALES[scale].offload_optimizer),
            "cpus": cpus, "gpus": gpus, "workers": self.workers_for(scale)})

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


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid study configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            msg = f"{msg} (got {e['input']!r})"
        elif e["type"] == "finite_number":
            msg = f"not a finite number (got {e['input']!r}); give a number, e.g. 2"
        elif e["type"] in ("int_parsing", "float_parsing", "bool_parsing", "string_type", "int_type", "list_type",
                           "greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_from_float",
                           "string_pattern_mismatch", "too_long", "dict_type", "model_type"):
            msg = f"{msg} (got {e['input']!r})"
        if e["type"] == "value_error" and re.match(r"^[a-z_]+(\.[a-z_-]+)*: ", msg):
            # a check that names its own field: placed under the section it was raised in
            lines.append(f"  - {'' if loc == '(top level)' else loc + '.'}{msg}")
        else:
            lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_study(data: dict, source: str = "<dict>") -> StudyConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of study settings at the top level, got {type(data).__name__}")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with a key given twice in one mapping refused (YAML's last-wins would hide the first value)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping (first on line {seen[key] + 1}); keep one",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A study file's settings with ``--set FIELD=VALUE`` overrides applied (FIELD dotted, as in the file:
    trial.epochs, search.learning_rate.low, task_overrides.udpos.epochs; VALUE read as YAML: 3, 1e-4, [a, b],
    true). The result is validated as the file is."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        field, sep, text = item.partition("=")
        parts = field.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item}: expected FIELD=VALUE with FIELD as in the study file, e.g. "
                              "--set trial.epochs=3 (`ray-xt config explain` lists the fields)")
        try:
            value = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item}: the value is not YAML ({err})") from None
        node = data
        for depth, key in enumerate(parts[:-1], 1):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: {'.'.join(parts[:depth])} is a value ({child!r}), not a group of "
                                  "settings")
            node = child
        node[parts[-1]] = value
    return data


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Load and validate a study YAML (with ``--set`` overrides); raises ConfigError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found (experiments/ holds the shipped ones)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); a study file is YAML text, e.g. "
                          "experiments/demo.yaml") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not overrides:
        return parse_study(data, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of study settings at the top level, got {type(data).__name__}")
    return parse_study(apply_overrides(data, overrides), f"{path} with --set {' --set '.join(overrides)}")


def explain(field: str | None = None) -> list[str]:
    """Every study-file setting under ``field`` (all when None), one line each: dotted name, type, default and
    description, from the models' own fields. Raises ConfigError for a field the study file has no place for."""
    lines = [line for line in _explain(StudyConfig, "") if field is None or line[0] == field
             or line[0].startswith(field + ".")]
    if not lines:
        top = ", ".join(StudyConfig.model_fields)
        raise ConfigError(f"no study setting {field!r}; top-level settings: {top}")
    width = max(len(name) for name, _ in lines)
    return [f"{name.ljust(width)}  {text}" for name, text in lines]


def _explain(model: type[BaseModel], prefix: str) -> list[tuple[str, str]]:
    out = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        annotation = info.annotation
        per_key = get_args(annotation)[1] if get_origin(annotation) is dict else None
        per_key = per_key if isinstance(per_key, type) and issubclass(per_key, BaseModel) else None
        inner = [] if per_key else [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
        group = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        kind = "group" if group else "one group per key" if per_key else _type_name(annotation)
        about = info.description or (group.__doc__ or "").strip().split("\n")[0] if group else info.description
        default = "" if info.is_required() or group or per_key else f" = {info.get_default(call_default_factory=True)!r}"
        out.append((dotted, f"{kind}{default}" + (f" — {about}" if about else "")))
        if group:
            out += _explain(group, dotted + ".")
        elif per_key:
            out += _explain(per_key, dotted + ".<key>.")
    return out


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "None")


def only_seeds(cfg: StudyConfig, seeds: str, source: str) -> StudyConfig:
    """The study narrowed to some of its own seeds (``--seeds 0``): the same stages, keys and storage, so a later
    run of the whole study skips what this one finished."""
    try:
        chosen = [int(seed) for seed in seeds.split(",")]
    except ValueError:
        raise ConfigError(f"{source}: --seeds {seeds} must be comma-separated integers, e.g. 0 or 0,1") from None
    unknown = [seed for seed in chosen if seed not in cfg.seeds]
    if unknown:
        raise ConfigError(f"{source}: --seeds {seeds}: seed(s) {unknown} are not in the study's seeds {cfg.seeds}; "
                          "add them to seeds: in the YAML to run them")
    return cfg.model_copy(update={"seeds": sorted(set(chosen), key=chosen.index)})


def translate_languages(cfg: StudyConfig) -> list[str]:
    """The languages of target-language intermediate data: intermediate.languages, else every zero-shot language
    of the study's target tasks."""
    if cfg.intermediate.languages is not None:
        return sorted(set(cfg.intermediate.languages))
    return sorted({lang for t in cfg.target.tasks for lang in cfg.languages_for(t)} - {"en"})
