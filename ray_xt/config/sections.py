"""The study file's sections (micro world, data, intermediate and target tasks, trial settings and their per-task and
per-scale overrides, search, scheduler, tracking, power), each typed, bounded and described."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ray_xt.config.strict import Strict, _accepted, known
from ray_xt.micro.codes import LANGUAGE_CODES
from ray_xt.tasks.registry import TASKS


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
        known(v, sorted(LANGUAGE_CODES), "micro-world language(s)")
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


IntermediateCondition = Literal["en", "translate-train", "translate-train-each", "mlm"]


def _english() -> list[IntermediateCondition]:
    return ["en"]


class IntermediateConfig(Strict):
    """Intermediate tasks and the conditions (languages of their data) each is trained in."""

    tasks: list[str] = Field(default_factory=list, description="intermediate tasks (e.g. mnli, qqp)")
    conditions: list[IntermediateCondition] = Field(
        default_factory=_english,
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
        return known(v, sorted(t for t, s in TASKS.items() if s.role == "intermediate"), "intermediate task(s)")


class TargetConfig(Strict):
    """XTREME target tasks, fine-tuned on English and evaluated zero-shot."""

    tasks: list[str] = Field(min_length=1, description="XTREME target tasks (e.g. pawsx, xnli)")
    languages: list[str] | None = Field(None, description="zero-shot evaluation languages (default: all of the task's)")

    @field_validator("tasks")
    @classmethod
    def _tasks_known(cls, v: list[str]) -> list[str]:
        return known(v, sorted(t for t, s in TASKS.items() if s.role == "target"), "target task(s)")


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
        name: (Optional[info.annotation], FieldInfo.merge_field_infos(info, default=None))  # noqa: UP045
        for name, info in TrialConfig.model_fields.items() if name not in PLACEMENT_FIELDS
    }
    return create_model("TaskOverride", __base__=Strict, __doc__="Per-task trial settings (the paper's protocol "
                        "differs by task: epochs, sequence length...): any trial: setting but placement.", **fields)


if TYPE_CHECKING:  # built at import from TrialConfig's fields; the checker sees the same fields, every one optional
    class TaskOverride(Strict):
        epochs: float | None
        batch_size: int | None
        max_seq_length: int | None
        doc_stride: int | None
        retrieval_layer: int | None
        max_train_examples: int | None
        max_eval_examples: int | None
        evals_per_epoch: int | None
        grad_accum: int | None
        warmup_ratio: float | None
        weight_decay: float | None
        zero_stage: int | None
        offload_optimizer: bool | None
        bf16: Literal["auto", True, False] | None
        placement: Literal["STRICT_PACK", "PACK", "SPREAD"] | None
        freeze_embeddings: bool | None
        group_by_length: bool | None
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


class WarmStartConfig(Strict):
    """Sweeps that start from what related finished stages found (``ray_xt.warm_start`` says which inform which)."""

    enabled: bool = Field(False, description="seed each sweep with its related stages' trials: their best learning "
                          "rate evaluated first, all their trials given to Optuna as observations (a warm stage waits "
                          "for the stages that inform it)")
    num_samples: int | None = Field(None, ge=1, le=10_000, description="trials of a stage that starts warm (default: "
                                    "search.num_samples); fewer is where warm sweeps save compute")
    from_smaller_scale: bool = Field(False, description="also learn from the same stage one scale down (the study's "
                                     "next smaller scale), its learning rates scaled by the width ratio "
                                     "(hidden size small / large, the muP rule for Adam) and clipped to the range")


class SearchConfig(Strict):
    """What Optuna searches (log-uniform learning rate) and how many trials a stage runs."""

    learning_rate: LogRange = Field(default_factory=lambda: LogRange(low=1e-5, high=1e-4))
    initial_learning_rate: float | None = Field(
        None, gt=0, le=10, description="first point to evaluate (e.g. the paper's value); must lie in the range"
    )
    num_samples: int = Field(4, ge=1, le=10_000, description="trials per stage")
    max_concurrent: int = Field(2, ge=1, le=10_000, description="trials running at once per stage (ConcurrencyLimiter)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="TPE sampler seed")
    warm_start: WarmStartConfig = Field(default_factory=WarmStartConfig)

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


class SequentialSeeds(Strict):
    """``seeds: {min: 3, max: 10}``: seeds added one round at a time while a primary contrast is undecided
    (``ray_xt.group_sequential``)."""

    min: int = Field(ge=2, le=50, description="seeds every stage runs before the first look")
    max: int = Field(ge=3, le=50, description="the most seeds any stage runs")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="two-sided family-wise error of the primary contrasts")
    futility_power: float = Field(0.1, ge=0, lt=1, description="a contrast stops as futile when its conditional "
                                  "power on the current trend falls below this (non-binding)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        return self


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


