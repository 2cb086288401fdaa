"""One stage: its training inputs, its Tune sweep (or, for retrieval, an evaluation), its MLflow runs, zero-shot
evaluation and its record. A stage driver runs it as a Ray task (``execute_stage``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ray_xt.config import StudyConfig, translate_languages
from ray_xt.data import FeatureCache
from ray_xt.loop import Schedule
from ray_xt.prepare import training_source
from ray_xt.records import StageRecord, stage_record, sweep_summary
from ray_xt.stages import MULTI_TASK, Condition, Stage
from ray_xt.study.inputs import Resolved
from ray_xt.study.layout import StudyParts, recordable
from ray_xt.study.zero_shot import ZeroShot
from ray_xt.sweep import SweepSettings, run_sweep
from ray_xt.tasks.registry import MLM_CORPUS, TASKS
from ray_xt.tracking import MLflowTrialCallback
from ray_xt.warm_start import WarmStart, samples_for, warm_start


class StageFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class StageContext:
    """What a stage runner needs, small and picklable: built once by the study driver, shipped to every stage's
    Ray task."""

    cfg: StudyConfig
    tracking_uri: str  # absolute (ray_xt.study.absolute_uri)
    resolved: Resolved
    git_revision: str
    trainer_pool: str | None = None  # the study's TrainerPool (ray_xt.trainer_hosts), if its CPU trials use one


class StageRunner:
    """One stage: its features, its Tune sweep (or evaluation), its MLflow runs, zero-shot evaluation, its record."""

    def __init__(self, context: StageContext, features: FeatureCache | None = None):
        """``features``: the driver's cache, which counts what it tokenised (else the stage's own)."""
        self.cfg, self.context, self.resolved = context.cfg, context, context.resolved
        self.parts = StudyParts.of(context.cfg, context.tracking_uri, features)
        self.git_revision, self.trainer_pool = context.git_revision, context.trainer_pool
        self._held_out: dict[str, frozenset[str]] | None = None
        self.zero_shot = ZeroShot(context.cfg, self.parts, context.resolved, self._feature_args)

    # ---- pieces -------------------------------------------------------------------------------

    @property
    def held_out(self) -> dict[str, frozenset[str]]:
        """Ids no stage trains or selects on, per source task (ray_xt.provenance), found once."""
        if self._held_out is None:
            from ray_xt.provenance import ExampleFiles, held_out_ids

            assert self.resolved is not None
            self._held_out = held_out_ids(self.cfg, ExampleFiles(self.resolved.data_root))
        return self._held_out

    def _train_languages(self, stage: Stage) -> list[str]:
        if stage.kind == "intermediate" and stage.condition == Condition("translate-train"):
            return translate_languages(self.cfg)
        if stage.kind == "intermediate" and (only := stage.condition.language):
            return [only]
        return ["en"]

    def _training_tasks(self, stage: Stage) -> list[str]:
        """The tasks whose data a sweep stage trains on: every intermediate task for multi-task, else the task's
        own training source (XQuAD and MLQA train on SQuAD)."""
        return self.cfg.intermediate.tasks if stage.task == MULTI_TASK else [training_source(stage.task)]

    def _feature_args(self, stage: Stage) -> dict:
        t = self.cfg.trial_for(stage.task)
        return {"max_len": t.max_seq_length, "stride": t.doc_stride}

    def _features(self, stage: Stage) -> tuple[list, int]:
        """The sweep stage's training inputs (one task, or every intermediate task for multi-task) and the
        number of training features; tokenised once, shared by all trials."""
        from ray_xt.data import load_features
        from ray_xt.families import family_of
        from ray_xt.loop import TaskInputs

        assert self.resolved is not None
        names = self._training_tasks(stage)
        tok = self.resolved.model_paths[stage.scale]
        langs = self._train_languages(stage)
        t = self.cfg.trial_for(stage.task)
        inputs, n_train = [], 0
        for name in names:
            source = TASKS[name]
            labels = family_of(source).label_space(self.resolved.data_root, source)
            args = {"labels": labels, "exclude_ids": self.held_out.get(name, frozenset()), **self._feature_args(stage)}
            train = self.parts.features.features(self.resolved.data_root, source, "train", langs, tok,
                                           max_examples=t.max_train_examples, **args)
            dev = self.parts.features.features(self.resolved.data_root, source, "dev", langs, tok,
                                         max_examples=t.max_eval_examples, **args)
            inputs.append(TaskInputs(name, tuple(labels), str(train), str(dev)))
            n_train += len(load_features(train)[0]["input_ids"])
        if stage.mixes_mlm:  # target-language text, masked, beside the task
            text = self.parts.features.features(self.resolved.data_root, TASKS[MLM_CORPUS], "train",
                                          translate_languages(self.cfg), tok, max_len=t.max_seq_length, labels=[])
            inputs.append(TaskInputs(MLM_CORPUS, (), str(text), str(text)))  # not in n_train: MLM steps are extra
        return inputs, n_train

    def warm_start(self, stage: Stage) -> WarmStart | None:
        """What the stage's informants (ray_xt.warm_start) tell its search; None for a stage that starts cold."""
        if not stage.informants:
            return None
        found = [(informant.label, informant.scale, self._finished(stage, informant, "informant"))
                 for informant in stage.informants]
        space = self.cfg.search.learning_rate
        return warm_start(stage.scale, found, space.low, space.high)

    def _sweep_settings(self, stage: Stage, n_train: int, warm: WarmStart | None = None) -> SweepSettings:
        cfg, t = self.cfg, self.cfg.resolved_trial(stage.task, stage.scale)
        # the loop's own arithmetic (ray_xt.loop), so ASHA's horizon agrees with the reports trials make
        schedule = Schedule.of(n_train, t.batch_size, t.epochs, t.evals_per_epoch)
        return SweepSettings(
            learning_rate_low=cfg.search.learning_rate.low, learning_rate_high=cfg.search.learning_rate.high,
            initial_learning_rate=cfg.search.initial_learning_rate, num_samples=samples_for(cfg, stage),
            first_learning_rates=warm.first_points if warm else (),
            observations=warm.observations if warm else (),
            max_concurrent=cfg.search.max_concurrent, search_seed=cfg.search.seed + stage.seed,
            asha=cfg.scheduler.enabled, grace_period=cfg.scheduler.grace_period,
            reduction_factor=cfg.scheduler.reduction_factor, max_reports=schedule.reports,
            max_failures=cfg.max_failures, cpus=t.cpus, gpus=t.gpus, workers=t.workers,
        )

    def _model_path(self, stage: Stage) -> str:
        assert self.resolved is not None
        if stage.upstream is None:
            return self.resolved.model_paths[stage.scale]
        return self._finished(stage, stage.upstream, "upstream stage")["sweep"]["best_model_dir"]

    def _finished(self, stage: Stage, dependency: Stage, role: str) -> StageRecord:
        """The record of a stage this one depends on (``Stage.depends_on``), which the driver ran first."""
        record = self.parts.store.get(dependency)
        if record is None:
            raise RuntimeError(f"{stage.label}: {role} {dependency.label} has not finished")
        return record

    # ---- one stage ----------------------------------------------------------------------------
    def run_stage(self, stage: Stage) -> StageRecord:
        """The one dispatch on a stage's kind: a sweep (intermediate and target stages) or an evaluation."""
        return self.run_sweep(stage) if stage.sweeps else self.run_retrieval(stage)

    def run_sweep(self, stage: Stage) -> StageRecord:
        from ray import tune

        from ray_xt.loop import TrialSpec
        from ray_xt.trial import stage_trainable

        assert self.resolved is not None
        cfg, t = self.cfg, self.cfg.resolved_trial(stage.task, stage.scale)
        inputs, n_train = self._features(stage)
        warm = self.warm_start(stage)
        settings = self._sweep_settings(stage, n_train, warm)
        spec = TrialSpec.of(
            t, model_path=self._model_path(stage), tokenizer_path=self.resolved.model_paths[stage.scale],
            tasks=tuple(inputs), seed=stage.seed, stage_key=stage.key, git_revision=self.git_revision,
            resolved_config=recordable(cfg), worker_failures=cfg.max_failures,
            trainer_pool=self.trainer_pool if hosted(self.cfg, stage.scale) else None,
            mlm_ratio=cfg.intermediate.mlm_ratio if stage.mixes_mlm else 0.0,
        )
        parent = self.parts.tracker.run_for(f"stage/{stage.key}", stage.name,
                                            {**stage.run_tags(cfg.name), **(warm.tags() if warm else {})})
        self._log_datasets(parent, stage)
        self.parts.tracker.log_params(parent, {
            **{f"trial.{k}": v for k, v in t.as_dict().items()},
            "search.learning_rate.low": settings.learning_rate_low,
            "search.learning_rate.high": settings.learning_rate_high,
            "search.num_samples": settings.num_samples, "train_examples": n_train,
            "train_languages": ",".join(self._train_languages(stage)), "model_path": spec.model_path,
            "git_revision": self.git_revision,
        })
        callback = MLflowTrialCallback(
            self.parts.tracker, stage.key, parent, stage.run_tags(cfg.name),
            {"seed": stage.seed, "scale": stage.scale, "task": stage.task, "condition": str(stage.condition),
             "git_revision": self.git_revision, "batch_size": spec.batch_size, "zero_stage": spec.zero_stage},
        )
        sweep_started, sweep_started_at = time.perf_counter(), time.time()
        outcome = run_sweep(
            stage.name, self.parts.storage.location_of(self.parts.paths.tune),
            tune.with_parameters(stage_trainable(stage.key), spec=spec), settings, [callback],
            locate=self.parts.storage.checkpoint_location,
        )
        record = stage_record(stage.tags, stage.label, sweep_summary(outcome), parent_run_id=parent,
                              sweep_seconds=time.perf_counter() - sweep_started, sweep_started_at=sweep_started_at,
                              trial_spec=asdict(spec), **({"warm_start": warm.as_record()} if warm else {}),
                              **(self.zero_shot.evaluate(stage, outcome.best_model_dir, list(inputs[0].labels))
                                 if stage.scored else {}))
        if stage.scored:
            self.zero_shot.log(parent, record)
        self.parts.tracker.log_metrics(parent, {"best_score": outcome.best_score, "best_learning_rate": outcome.best_learning_rate}, 0)
        self.parts.tracker.finish(parent)
        return record

    def run_retrieval(self, stage: Stage) -> StageRecord:
        """Retrieval straight from the upstream checkpoint (or the pretrained model): no sweep."""
        parent = self.parts.tracker.run_for(f"stage/{stage.key}", stage.name, stage.run_tags(self.cfg.name))
        self._log_datasets(parent, stage)
        model_dir = self._model_path(stage)
        self.parts.tracker.log_params(parent, {"model_path": model_dir, "git_revision": self.git_revision,
                                         "retrieval_layer": self.cfg.trial_for(stage.task).retrieval_layer or "default"})
        evaluated = self.zero_shot.evaluate(stage, model_dir, [])
        scores = list(evaluated["zero_shot"].values())
        record = stage_record(stage.tags, stage.label,
                              {"best_score": sum(scores) / len(scores) if scores else float("nan"),
                               "best_learning_rate": 0.0, "best_model_dir": model_dir},
                              parent_run_id=parent, model_dir=model_dir, **evaluated)
        self.zero_shot.log(parent, record)
        self.parts.tracker.finish(parent)
        return record

    def _log_datasets(self, parent: str, stage: Stage) -> None:
        """The manifest entries a stage trains, selects and is scored on, as its MLflow run's dataset inputs."""
        assert self.resolved is not None
        known, inputs = self.resolved.datasets, []
        if stage.mixes_mlm:
            inputs += [(f"{MLM_CORPUS}/train/{lang}", known.get(f"{MLM_CORPUS}/train/{lang}"), "training")
                       for lang in translate_languages(self.cfg)]
        if stage.sweeps:
            names = self._training_tasks(stage)
            for name in names:
                for lang in self._train_languages(stage):
                    inputs += [(f"{name}/{split}/{lang}", known.get(f"{name}/{split}/{lang}"), context)
                               for split, context in (("train", "training"), ("dev", "validation"))]
        if stage.scored:
            task = TASKS[stage.task]
            inputs += [(f"{stage.task}/{task.eval_split_for(lang)}/{lang}",
                        known.get(f"{stage.task}/{task.eval_split_for(lang)}/{lang}"), "evaluation")
                       for lang in self.cfg.languages_for(stage.task)]
        self.parts.tracker.log_datasets(parent, [(name, entry, role) for name, entry, role in inputs if entry is not None])

    def prepare(self, stage: Stage) -> None:
        """Tokenise everything a stage reads, in the driver, once: stage drivers and trials only load it."""
        labels: list[str] = []
        if stage.sweeps:
            labels = list(self._features(stage)[0][0].labels)
        if stage.scored:
            self.zero_shot.eval_features(stage, labels)


def execute_stage(context: StageContext, stage: Stage, _submitted: float) -> StageRecord:
    """One stage, run as a Ray task: its own Tune sweep (or evaluation), MLflow records, and its record back."""
    return StageRunner(context).run_stage(stage)


def hosted(cfg: StudyConfig, scale: str) -> bool:
    """Trials of this scale train in the study's warm trainer hosts: one-process CPU trials only."""
    _, gpus = cfg.resources_for(scale)
    return cfg.warm_trainers and gpus == 0 and cfg.workers_for(scale) == 1


