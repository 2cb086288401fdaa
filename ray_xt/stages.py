"""A study expands into stages: intermediate sweeps, then target sweeps from their checkpoints.

Each stage has a key: a hash of its resolved inputs and its upstream stage's
key, so a finished stage is recognised (and skipped) however often the study
is re-run, and a change anywhere upstream re-runs exactly what depends on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Literal

from ray_xt.config import StudyConfig, translate_languages
from ray_xt.records import StageTags
from ray_xt.tasks.registry import TASKS

PER_LANGUAGE = "translate-train:"  # a per-language condition's prefix: one model for each target language


@dataclass(frozen=True)
class Condition:
    """A stage's condition as stage keys, records and MLflow tags spell it: ``none`` (no intermediate task),
    ``en``, ``translate-train``, ``mlm``, ``multi-task``, or ``translate-train:<lang>`` (one model per language)."""

    name: str
    language: str | None = None  # the one target language of a per-language condition

    @classmethod
    def parse(cls, text: str) -> Condition:
        if text.startswith(PER_LANGUAGE):
            return cls("translate-train", text[len(PER_LANGUAGE):])
        return cls(text)

    @property
    def group(self) -> str:
        """What the report compares: per-language models pooled as ``translate-train-each``."""
        return "translate-train-each" if self.language else self.name

    def __str__(self) -> str:
        return f"{PER_LANGUAGE}{self.language}" if self.language else self.name


StageKind = Literal["intermediate", "target", "retrieval"]


@dataclass(frozen=True)
class Stage:
    kind: StageKind  # intermediate, target (sweeps) | retrieval (evaluated from the upstream's checkpoint, no training)
    scale: str
    task: str
    seed: int
    condition: Condition = Condition("none")  # target stages: the upstream's ("none": from the pretrained model)
    intermediate_task: str | None = None
    upstream: Stage | None = None
    inputs_digest: str = ""
    # a warm start (ray_xt.warm_start): the finished stages whose trials seed this stage's search, and its settings
    informants: tuple[Stage, ...] = ()
    warm_digest: str = ""

    @property
    def key(self) -> str:
        payload = {
            "kind": self.kind, "scale": self.scale, "task": self.task, "seed": self.seed,
            "condition": str(self.condition), "intermediate_task": self.intermediate_task,
            "inputs": self.inputs_digest, "upstream": self.upstream.key if self.upstream else None,
            # only a warm stage has these: every other key is what it was before warm starts existed
            **({"informants": [s.key for s in self.informants], "warm": self.warm_digest} if self.informants else {}),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def depends_on(self) -> tuple[Stage, ...]:
        """What must finish before this stage starts: its upstream and its informants."""
        return ((self.upstream,) if self.upstream else ()) + self.informants

    @property
    def sweeps(self) -> bool:
        """Trains (a Tune sweep); a retrieval stage only evaluates its upstream's checkpoint."""
        return self.kind != "retrieval"

    @property
    def scored(self) -> bool:
        """Evaluated zero-shot on the target's languages (target and retrieval stages)."""
        return self.kind != "intermediate"

    @property
    def mixes_mlm(self) -> bool:
        """An intermediate stage of the mlm condition: MLM batches of target-language text beside its task."""
        return self.kind == "intermediate" and self.condition == Condition("mlm")

    @property
    def label(self) -> str:
        if self.kind == "intermediate":
            return f"intermediate {self.task} [{self.condition}] {self.scale} seed{self.seed}"
        source = f"{self.intermediate_task}[{self.condition}]" if self.upstream else "pretrained"
        return f"{self.kind} {self.task} <- {source} {self.scale} seed{self.seed}"

    @property
    def name(self) -> str:
        """Folder-safe, readable and unique (the key disambiguates)."""
        cond = str(self.condition).replace("-", "").replace(":", "_")
        up = f"-{self.intermediate_task}" if self.intermediate_task else ""
        return f"{self.kind}-{self.task}{up}-{cond}-{self.scale}-s{self.seed}-{self.key[:8]}"

    def run_tags(self, study: str) -> dict[str, str]:
        """The stage's MLflow run tags: its coordinates and the study."""
        return {**{k: str(v) for k, v in self.tags.items()}, "study": study}

    @property
    def tags(self) -> StageTags:
        return {
            "stage": self.kind, "scale": self.scale, "task": self.task, "condition": str(self.condition),
            "intermediate_task": self.intermediate_task or "none", "seed": str(self.seed), "stage_key": self.key,
        }


# Trial settings added after studies were first run, each with the value(s) that compute what studies computed
# before it existed (docs/migrations.md, "Settings added later"): at those values a setting stays out of the key, so
# finished stages keep their keys; any other value is keyed. grad_accum's default became None (chosen per scale)
# after it had been 1: accumulation changes how an effective batch is computed, not what it is.
LATER_TRIAL_DEFAULTS: dict[str, list] = {"workers": [None], "freeze_embeddings": [False], "group_by_length": [False],
                                         "grad_accum": [None, 1], "placement": ["STRICT_PACK"],
                                         "offload_optimizer": [None]}


def _trial_payload(trial) -> dict:
    dumped = trial.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if not (k in LATER_TRIAL_DEFAULTS and v in LATER_TRIAL_DEFAULTS[k])}


def _micro_scale_specs(cfg: StudyConfig) -> dict:
    """How the study's micro scales are pretrained (as written in ``ray_xt.scales``, before bf16 'auto' is
    resolved on a machine): a changed pretraining recipe makes new models, so finished stages must not be reused."""
    from ray_xt.scales import SCALES

    return {s: micro.key_fields() for s in cfg.scales if (micro := SCALES[s].micro) is not None}


def inputs_digest(cfg: StudyConfig, extra: dict | None = None) -> str:
    """What every stage's result depends on besides its own coordinates."""
    from ray_xt.micro.build import CORPUS_VERSION, TASKS_VERSION

    payload = {
        # where the mirror and the translations sit is not what they hold: moving them keeps every stage
        # (udpos_hub says where a file may come from, like the mirror; the manifest records what was read)
        "data": cfg.data.model_dump(mode="json", exclude={"hub_mirror", "translations", "udpos_hub"}),
        "micro": cfg.micro.model_dump(mode="json", exclude={"cache_dir"}),
        # a micro study's results depend on the generator too: a new world version must not reuse old stages
        **({"micro_world_version": [CORPUS_VERSION, TASKS_VERSION], "micro_scales": _micro_scale_specs(cfg)}
           if cfg.data.source == "micro" else {}),
        "trial": _trial_payload(cfg.trial),
        **({"task_overrides": {k: v.model_dump(mode="json", exclude_none=True) for k, v in cfg.task_overrides.items()}}
           if cfg.task_overrides else {}),
        # a warm start changes only the stages it informs: their keys carry it (Stage.informants)
        "search": cfg.search.model_dump(mode="json", exclude={"warm_start"}),
        "scheduler": cfg.scheduler.model_dump(mode="json"),
        "target_languages": cfg.target.languages,
        **({"intermediate_languages": sorted(set(cfg.intermediate.languages))}
           if cfg.intermediate.languages is not None else {}),
        **({"model_paths": dict(cfg.model_paths)} if cfg.model_paths else {}),
        **(extra or {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


MULTI_TASK = "multi-task"  # the task (and condition) of a stage trained on all intermediate tasks at once

# Stage-key versions, each bumped when a fix changes what some stages compute (their finished records must not be
# reused); docs/migrations.md says which stages each bump re-runs.
# 2: a target stage's fresh head is drawn anew even where its upstream checkpoint has a head of the same shape
# (families.base.init_head); before, transformers kept the loaded head (QQP's before PAWS-X, MNLI's before XNLI).
FRESH_HEAD_VERSION = 2


# 1: the mlm condition's MLM batches come on top of the task's own steps at a fixed ratio (the task trains exactly
# as its `en` twin), its text sampled at random with the seed; before, MLM lines and task examples were mixed
# examples-proportionally and counted in the step schedule, and the text was the corpus's first lines.
MLM_MIX_VERSION = 1


def _mlm_inputs(cfg: StudyConfig) -> dict:
    """What an mlm stage trains on besides its task: its text (corpus, lines) and how it is mixed in."""
    corpus = cfg.intermediate.mlm_corpus
    return {"version": MLM_MIX_VERSION, "ratio": cfg.intermediate.mlm_ratio, "lines": cfg.intermediate.mlm_lines,
            "corpus": corpus.model_dump(mode="json") if corpus else None}


def _head_carried_over(upstream: Stage | None, target: str) -> bool:
    """The stages FRESH_HEAD_VERSION re-runs: targets after a single intermediate task of their own family (whose
    checkpoint has a head the target's may match in shape; a multi-task upstream saves the encoder alone)."""
    return (upstream is not None and upstream.task != MULTI_TASK
            and TASKS[upstream.task].family == TASKS[target].family)


def _variants(cfg: StudyConfig, condition: str) -> list[str]:
    """translate-train-each becomes one stage condition per language: 'translate-train:<lang>'."""
    if condition == "translate-train-each":
        return [str(Condition("translate-train", lang)) for lang in translate_languages(cfg)]
    return [condition]


def condition_language(condition: str) -> str | None:
    """The single target language of a 'translate-train:<lang>' condition."""
    return Condition.parse(condition).language


def expand(cfg: StudyConfig) -> list[Stage]:
    """Stages in dependency order: per scale and seed, intermediates first, then targets (a warm start with
    ``from_smaller_scale`` orders the scales small to large, as each then learns from the one below)."""
    digest = inputs_digest(cfg)
    head_digest = inputs_digest(cfg, {"fresh_head": FRESH_HEAD_VERSION})
    mlm_digest = inputs_digest(cfg, {"mlm": _mlm_inputs(cfg)})
    warm = _Warm(cfg)
    stages: list[Stage] = []
    for scale in warm.scale_order():
        for seed in cfg.seeds:
            upstreams: list[Stage | None] = [None]
            if cfg.intermediate.multi_task:  # one encoder trained on every intermediate task (English)
                stage = warm.stage(Stage("intermediate", scale, MULTI_TASK, seed, Condition(MULTI_TASK),
                                         inputs_digest=inputs_digest(cfg, {"tasks": list(cfg.intermediate.tasks)})))
                stages.append(stage)
                upstreams.append(stage)
            for task in cfg.intermediate.tasks:
                for condition in cfg.intermediate.conditions:
                    for variant in _variants(cfg, condition):
                        stage = warm.stage(Stage("intermediate", scale, task, seed, Condition.parse(variant),
                                                 inputs_digest=mlm_digest if variant == "mlm" else digest))
                        stages.append(stage)
                        upstreams.append(stage)
            for target in cfg.target.tasks:
                kind: StageKind = "retrieval" if TASKS[target].family == "retrieval" else "target"
                for up in upstreams:
                    stages.append(warm.stage(
                        Stage(
                            kind, scale, target, seed,
                            condition=up.condition if up else Condition("none"),
                            intermediate_task=up.task if up else None,
                            upstream=up, inputs_digest=head_digest if _head_carried_over(up, target) else digest,
                        )
                    ))
    return stages


class _Warm:
    """Gives each sweep stage its informants (ray_xt.warm_start's rule) from the stages built before it."""

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.enabled = cfg.search.warm_start.enabled
        self.built: dict[tuple, Stage] = {}
        if self.enabled:
            from ray_xt.warm_start import settings_digest

            self.digest = settings_digest(cfg)

    def scale_order(self) -> list[str]:
        if not (self.enabled and self.cfg.search.warm_start.from_smaller_scale):
            return list(self.cfg.scales)
        from ray_xt.scales import SCALES

        return sorted(self.cfg.scales, key=lambda s: SCALES[s].hidden_size)

    def stage(self, stage: Stage) -> Stage:
        if not self.enabled:
            return stage
        from ray_xt.warm_start import informant_coordinates, smaller_scale

        coordinates = (stage.kind, stage.scale, stage.task, stage.seed, str(stage.condition), stage.intermediate_task)
        if stage.sweeps:
            wanted = informant_coordinates(
                *coordinates, has_upstream=stage.upstream is not None, first_seed=self.cfg.seeds[0],
                smaller_scale=smaller_scale(self.cfg.scales, stage.scale)
                if self.cfg.search.warm_start.from_smaller_scale else None)
            informants = tuple(self.built[c] for c in wanted if c in self.built)
            if informants:
                stage = replace(stage, informants=informants, warm_digest=self.digest)
        self.built[coordinates] = stage
        return stage
