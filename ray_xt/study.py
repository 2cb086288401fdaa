"""Runs a study: data and models ready, stages swept in order, memoised on the study's storage."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ray_xt import storage
from ray_xt.config import StudyConfig
from ray_xt.data import FeatureCache
from ray_xt.loop import Schedule
from ray_xt.prepare import data_needs, prepare_data, training_source
from ray_xt.progress import StudyProgress, measured_device_hours
from ray_xt.records import StageRecord
from ray_xt.scales import SCALES, model_location
from ray_xt.stages import MULTI_TASK, Stage, condition_language, expand, translate_languages
from ray_xt.storage import StudyStorage
from ray_xt.sweep import SweepSettings, run_sweep
from ray_xt.tasks.registry import MLM_CORPUS, TASKS
from ray_xt.tracking import MLflowTrialCallback, Tracker


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        rev = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class StudyPaths:
    root: Path  # <storage>/<study>

    @property
    def tune(self) -> Path:
        return self.root / "tune"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def predictions(self) -> Path:
        """XTREME submissions, one per target/retrieval stage: <stage name>/<task>/test-<lang>.{tsv,json}."""
        return self.root / "predictions"


def node_local_storage(storage: str, alive_nodes: int) -> str | None:
    """Why ``storage`` cannot serve a cluster of ``alive_nodes`` nodes, or None: a relative path is a different
    folder on every node (and Ray Tune does not sync a worker's checkpoints to the head), so the next stage on
    another node would not find them."""
    if alive_nodes <= 1 or "://" in storage or Path(storage).expanduser().is_absolute():
        return None
    return (f"storage: {storage!r} is a relative, node-local path, but this cluster has {alive_nodes} nodes: a "
            "checkpoint a worker writes would not be there for the next stage on another node. Use a folder every "
            "node mounts (storage: /mnt/shared/results, or --storage /mnt/shared/results; the Makefile's cluster "
            "targets pass it) or a URI Ray Tune accepts. Nothing was run.")


class StageStore:
    """Finished stages as JSON files: survives the driver, read before anything is scheduled."""

    def __init__(self, directory: str | Path):
        self.directory = str(directory)  # a folder or a URI (ray_xt.storage)

    def _location(self, stage: Stage) -> str:
        return storage.join(self.directory, f"{stage.key}.json")

    def get(self, stage: Stage) -> StageRecord | None:
        text = storage.read_text(self._location(stage))
        return json.loads(text) if text is not None else None

    def put(self, stage: Stage, record: StageRecord) -> None:  # whole or absent
        storage.write_text(self._location(stage), json.dumps(record, indent=1, default=str) + "\n")


@dataclass
class Resolved:
    """What the config names, made concrete: data root, model paths, tokenizer, and the data's manifest."""

    data_root: Path
    model_paths: dict[str, str]  # pretrained model per scale; its folder (or hub id) also holds the tokenizer
    datasets: dict[str, dict] = field(default_factory=dict)  # "task/split/lang" -> {source, digest, rows}


def resolve_inputs(cfg: StudyConfig, use_ray: bool, progress: bool = True, prepared: list | None = None) -> Resolved:
    """``prepared``: the entries ``prepare_data`` already returned for this study (the CLI prepares real data
    before Ray starts), so the data are not fetched and checked a second time."""
    if cfg.data.source == "micro":
        from ray_xt.micro.build import build_micro
        from ray_xt.micro.world import WorldSpec

        m = cfg.micro
        spec = WorldSpec(
            seed=m.seed, languages=tuple(m.languages), corpus_sentences=m.corpus_sentences,
            train_size=m.train_size, dev_size=m.dev_size, test_size=m.test_size, translation_noise=m.translation_noise,
            # only the files this study reads: another task set shares the corpus, tokenizer and models
            tasks=tuple(sorted({t for t, _, _ in data_needs(cfg) if t != MLM_CORPUS})),  # the mlm text: its corpus
        )
        pretrain = {
            s: (replace(SCALES[s].micro, steps=m.pretrain_steps) if m.pretrain_steps else SCALES[s].micro)
            for s in cfg.scales
        }
        world = build_micro(spec, m.vocab_size, pretrain, m.cache_dir, use_ray=use_ray, progress=progress)
        return Resolved(world.root, {s: str(world.model_dirs[s]) for s in cfg.scales},
                        manifest_datasets(prepare_data(cfg, root=world.root)))
    entries = prepared if prepared is not None else prepare_data(cfg)
    return Resolved(cfg.data.data_root(), {s: model_location(s, cfg.model_paths.get(s)) for s in cfg.scales},
                    manifest_datasets(entries))


def manifest_datasets(entries) -> dict[str, dict]:
    return {f"{e.task}/{e.split}/{e.lang}": {"source": e.source, "digest": e.digest, "rows": e.rows} for e in entries}


def absolute_uri(uri: str) -> str:
    """A SQLite store made absolute (stage drivers run as Ray tasks in other working directories) and
    patient: concurrent stage drivers write to it, so a writer waits for the lock instead of failing."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = uri[len(prefix):]
    if not path.startswith("/"):
        path = str(Path(path).resolve())
    if "timeout=" not in path:
        path += ("&" if "?" in path else "?") + "timeout=60"
    return prefix + path


def recordable(cfg: StudyConfig) -> dict:
    """The resolved study as stage records and checkpoints keep it: no password of the tracking URI."""
    from ray_xt.tracking import without_password

    dumped = cfg.model_dump(mode="json")
    dumped["tracking"]["uri"] = without_password(dumped["tracking"]["uri"])
    return dumped


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


class StudyParts:
    """A study's storage, paths, stage records, MLflow experiment and feature cache (each built from the config)."""

    def __init__(self, cfg: StudyConfig, tracking_uri: str):
        self.cfg = cfg
        self.storage = StudyStorage(cfg.storage, cfg.name)
        self.paths = StudyPaths(self.storage.local)  # written here first; self.storage publishes them
        self.store = StageStore(self.storage.location_of(self.paths.stages))
        self.tracker = Tracker(tracking_uri, cfg.tracking.experiment or f"ray_xt/{cfg.name}")
        self.features = FeatureCache(self.paths.features, storage=self.storage)


class StageRunner(StudyParts):
    """One stage: its features, its Tune sweep (or evaluation), its MLflow runs, zero-shot evaluation, its record."""

    def __init__(self, context: StageContext, features: FeatureCache | None = None):
        super().__init__(context.cfg, context.tracking_uri)
        self.context, self.resolved = context, context.resolved
        self.git_revision, self.trainer_pool = context.git_revision, context.trainer_pool
        self._held_out: dict[str, frozenset[str]] | None = None
        if features is not None:  # the driver's, which counts what it tokenised
            self.features = features

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
        if stage.kind == "intermediate" and stage.condition == "translate-train":
            return translate_languages(self.cfg)
        if stage.kind == "intermediate" and condition_language(stage.condition):
            return [condition_language(stage.condition)]
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
            train = self.features.features(self.resolved.data_root, source, "train", langs, tok,
                                           max_examples=t.max_train_examples, **args)
            dev = self.features.features(self.resolved.data_root, source, "dev", langs, tok,
                                         max_examples=t.max_eval_examples, **args)
            inputs.append(TaskInputs(name, tuple(labels), str(train), str(dev)))
            n_train += len(load_features(train)[0]["input_ids"])
        if stage.kind == "intermediate" and stage.condition == "mlm":  # target-language text, masked, beside the task
            text = self.features.features(self.resolved.data_root, TASKS[MLM_CORPUS], "train",
                                          translate_languages(self.cfg), tok, max_len=t.max_seq_length, labels=[])
            inputs.append(TaskInputs(MLM_CORPUS, (), str(text), str(text)))  # not in n_train: MLM steps are extra
        return inputs, n_train

    def _sweep_settings(self, stage: Stage, n_train: int) -> SweepSettings:
        cfg, t = self.cfg, self.cfg.resolved_trial(stage.task, stage.scale)
        assert t.batch_size is not None
        # the loop's own arithmetic (ray_xt.loop), so ASHA's horizon agrees with the reports trials make
        schedule = Schedule.of(n_train, t.batch_size, t.epochs, t.evals_per_epoch)
        return SweepSettings(
            lr_low=cfg.search.learning_rate.low, lr_high=cfg.search.learning_rate.high,
            initial_lr=cfg.search.initial_learning_rate, num_samples=cfg.search.num_samples,
            max_concurrent=cfg.search.max_concurrent, search_seed=cfg.search.seed + stage.seed,
            asha=cfg.scheduler.enabled, grace_period=cfg.scheduler.grace_period,
            reduction_factor=cfg.scheduler.reduction_factor, max_reports=schedule.reports,
            max_failures=cfg.max_failures, cpus=t.cpus, gpus=t.gpus, workers=t.workers,
        )

    def _model_path(self, stage: Stage) -> str:
        assert self.resolved is not None
        if stage.upstream is None:
            return self.resolved.model_paths[stage.scale]
        record = self.store.get(stage.upstream)
        if record is None:
            raise RuntimeError(f"{stage.label}: upstream stage {stage.upstream.label} has not finished")
        return record["sweep"]["best_model_dir"]

    # ---- one stage ----------------------------------------------------------------------------
    def run_stage(self, stage: Stage) -> StageRecord:
        from ray import tune

        from ray_xt.loop import TrialSpec
        from ray_xt.trial import stage_trainable

        assert self.resolved is not None
        cfg, t = self.cfg, self.cfg.resolved_trial(stage.task, stage.scale)
        if stage.kind == "retrieval":
            return self.run_retrieval(stage)
        inputs, n_train = self._features(stage)
        settings = self._sweep_settings(stage, n_train)
        spec = TrialSpec.of(
            t, model_path=self._model_path(stage), tokenizer_path=self.resolved.model_paths[stage.scale],
            tasks=tuple(inputs), seed=stage.seed, stage_key=stage.key, git_revision=self.git_revision,
            resolved_config=recordable(cfg), worker_failures=cfg.max_failures,
            trainer_pool=self.trainer_pool if hosted(self.cfg, stage.scale) else None,
            mlm_ratio=cfg.intermediate.mlm_ratio if stage.kind == "intermediate" and stage.condition == "mlm" else 0.0,
        )
        parent = self.tracker.run_for(f"stage/{stage.key}", stage.name, {**stage.tags, "study": cfg.name})
        self._log_datasets(parent, stage)
        self.tracker.log_params(parent, {
            **{f"trial.{k}": v for k, v in t.model_dump().items()},
            "search.lr_low": settings.lr_low, "search.lr_high": settings.lr_high,
            "search.num_samples": settings.num_samples, "train_examples": n_train,
            "train_languages": ",".join(self._train_languages(stage)), "model_path": spec.model_path,
            "git_revision": self.git_revision,
        })
        callback = MLflowTrialCallback(
            self.tracker, stage.key, parent, {**stage.tags, "study": cfg.name},
            {"seed": stage.seed, "scale": stage.scale, "task": stage.task, "condition": stage.condition,
             "git_revision": self.git_revision, "batch_size": spec.batch_size, "zero_stage": spec.zero_stage},
        )
        sweep_started, sweep_started_at = time.perf_counter(), time.time()
        outcome = run_sweep(
            stage.name, self.storage.location_of(self.paths.tune),
            tune.with_parameters(stage_trainable(stage.key), spec=spec), settings, [callback],
            locate=self.storage.checkpoint_location,
        )
        record = {
            "stage": stage.tags, "label": stage.label, "sweep": asdict(outcome), "parent_run_id": parent,
            "sweep_seconds": time.perf_counter() - sweep_started, "sweep_started_at": sweep_started_at,
            "trial_spec": asdict(spec),
        }
        if stage.kind == "target":
            record.update(self.zero_shot(stage, outcome.best_model_dir, list(inputs[0].labels)))
            self._log_zero_shot(parent, record)
        self.tracker.log_metrics(parent, {"best_score": outcome.best_score, "best_learning_rate": outcome.best_learning_rate}, 0)
        self.tracker.finish(parent)
        return record

    def run_retrieval(self, stage: Stage) -> StageRecord:
        """Retrieval straight from the upstream checkpoint (or the pretrained model): no sweep."""
        parent = self.tracker.run_for(f"stage/{stage.key}", stage.name, {**stage.tags, "study": self.cfg.name})
        self._log_datasets(parent, stage)
        model_dir = self._model_path(stage)
        self.tracker.log_params(parent, {"model_path": model_dir, "git_revision": self.git_revision,
                                         "retrieval_layer": self.cfg.trial_for(stage.task).retrieval_layer or "default"})
        record = {"stage": stage.tags, "label": stage.label, "parent_run_id": parent, "model_dir": model_dir,
                  **self.zero_shot(stage, model_dir, [])}
        scores = list(record["zero_shot"].values())
        record["sweep"] = {"best_score": sum(scores) / len(scores) if scores else float("nan"),
                           "best_learning_rate": 0.0, "best_model_dir": model_dir}
        self._log_zero_shot(parent, record)
        self.tracker.finish(parent)
        return record

    def _log_datasets(self, parent: str, stage: Stage) -> None:
        """The manifest entries a stage trains, selects and is scored on, as its MLflow run's dataset inputs."""
        assert self.resolved is not None
        known, inputs = self.resolved.datasets, []
        if stage.kind == "intermediate" and stage.condition == "mlm":
            inputs += [(f"{MLM_CORPUS}/train/{lang}", known.get(f"{MLM_CORPUS}/train/{lang}"), "training")
                       for lang in translate_languages(self.cfg)]
        if stage.kind != "retrieval":
            names = self._training_tasks(stage)
            for name in names:
                for lang in self._train_languages(stage):
                    inputs += [(f"{name}/{split}/{lang}", known.get(f"{name}/{split}/{lang}"), context)
                               for split, context in (("train", "training"), ("dev", "validation"))]
        if stage.kind != "intermediate":
            task = TASKS[stage.task]
            inputs += [(f"{stage.task}/{task.eval_split_for(lang)}/{lang}",
                        known.get(f"{stage.task}/{task.eval_split_for(lang)}/{lang}"), "evaluation")
                       for lang in self.cfg.languages_for(stage.task)]
        self.tracker.log_datasets(parent, [x for x in inputs if x[1] is not None])

    def _log_zero_shot(self, parent: str, record: StageRecord) -> None:
        scores = record["zero_shot"]
        transfer = [v for lang, v in scores.items() if lang != "en"]
        # the runs table's zero-shot column (ray_xt.mlflow_view): the mean over the target languages but English
        average = {"zero_shot.avg": sum(transfer) / len(transfer)} if transfer else {}
        self.tracker.log_metrics(parent, {**{f"zero_shot.{lang}": v for lang, v in scores.items()}, **average}, 0)
        if record.get("predictions_dir"):
            local = self.storage.local_of(record["predictions_dir"])
            self.tracker.log_artifacts(parent, str(local if local.is_dir() else storage.materialize(
                record["predictions_dir"])), "predictions")

    def _eval_features(self, stage: Stage, labels: list[str]) -> dict[str, dict[str, str]]:
        """Per evaluated language, the features of its scored split (dev, or test where XTREME has no dev set for
        it; capped at max_eval_examples) and of its whole submission split: {lang: {"eval": path, "submission":
        path}}, one path for both where they are the same features."""
        assert self.resolved is not None
        task = TASKS[stage.task]
        tok = self.resolved.model_paths[stage.scale]
        langs = self.cfg.languages_for(stage.task)
        only = condition_language(stage.condition)
        if only:  # a model trained on one language's translation is evaluated on that language (and English)
            langs = [lang for lang in langs if lang in ("en", only)]
        root = self.resolved.data_root
        max_eval = self.cfg.trial_for(stage.task).max_eval_examples
        feature_dirs: dict[str, dict[str, str]] = {}
        for lang in langs:
            scored = task.eval_split_for(lang)
            for role, split in (("eval", scored), ("submission", task.submission_split)):
                if role == "submission" and split == scored and max_eval is None:
                    feature_dirs.setdefault(lang, {})[role] = feature_dirs.get(lang, {}).get("eval", "")
                elif (root / task.path(split, lang)).is_file():  # a submission covers the whole split: no cap
                    feature_dirs.setdefault(lang, {})[role] = str(self.features.features(
                        root, task, split, [lang], tok, labels=labels, max_examples=max_eval if role == "eval" else None,
                        **self._feature_args(stage)))
        return {lang: {k: v for k, v in d.items() if v} for lang, d in feature_dirs.items()}

    def prepare(self, stage: Stage) -> None:
        """Tokenise everything a stage reads, in the driver, once: stage drivers and trials only load it."""
        labels: list[str] = []
        if stage.kind != "retrieval":
            labels = list(self._features(stage)[0][0].labels)
        if stage.kind != "intermediate":
            self._eval_features(stage, labels)

    def zero_shot(self, stage: Stage, model_dir: str, labels: list[str]) -> dict:
        """A checkpoint evaluated on every language (a Ray task, so it runs on the cluster), and its XTREME
        submission files written under predictions/<stage name>/."""
        import ray

        assert self.resolved is not None
        task = TASKS[stage.task]
        feature_dirs = self._eval_features(stage, labels)
        cpus, gpus = self.cfg.resources_for(stage.scale)
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(evaluate_languages)
        results = ray.get(remote.remote(model_dir, stage.task, feature_dirs, cpus,
                                          self.cfg.trial_for(stage.task).retrieval_layer))
        out_dir = self.paths.predictions / stage.name / stage.task
        test_metrics = {}
        for lang, result in results.items():
            if "submission" in result:
                path = out_dir / f"test-{lang}.{task.submission_suffix}"
                write_submission(path, result["submission"])
                test_metrics.update(score_against_gold(self.resolved.data_root, stage.task, path, lang))
        return {
            "test_metrics": test_metrics,
            "zero_shot": {lang: r["score"] for lang, r in results.items()},
            "zero_shot_metrics": {lang: r["metrics"] for lang, r in results.items()},
            "zero_shot_splits": {lang: r["split"] for lang, r in results.items()},
            "predictions_dir": self.storage.publish(out_dir) if out_dir.exists() else None,
        }

class StudyDriver(StudyParts):
    """A whole study: resolves its data and models, expands it into stages, skips finished ones, schedules the rest
    (``parallel_stages`` at once, each as a Ray task running a StageRunner) and stores their records."""

    def __init__(self, cfg: StudyConfig, tracking_uri: str | None = None, log: Callable[[str], None] = print):
        super().__init__(cfg, absolute_uri(tracking_uri or cfg.tracking.uri))
        self.log = log
        self.git_revision = git_revision()
        self.resolved: Resolved | None = None
        self.trainer_pool: str | None = None  # the running study's TrainerPool name (ray_xt.trainer_hosts)
        self.prepared: list | None = None  # prepare_data's entries when the caller prepared the data already
        self.progress = StudyProgress(0, 0, {})  # this run's, from run()
        self.summary_run_id = ""  # the study's MLflow summary run, found once per run (its progress metrics)

    def context(self) -> StageContext:
        assert self.resolved is not None, "resolve the study's inputs first"
        return StageContext(self.cfg, self.tracker.uri, self.resolved, self.git_revision, self.trainer_pool)

    def stage_runner(self) -> StageRunner:
        """A stage runner in this process, sharing this driver's feature cache."""
        return StageRunner(self.context(), features=self.features)

    # ---- the whole study ----------------------------------------------------------------------
    def run(self, progress: bool = True) -> list[StageRecord]:
        """Runs what is not finished, independent stages concurrently (``parallel_stages`` at once), each as a
        Ray task driving its own Tune sweep; a stage starts when its upstream has finished."""
        started = time.perf_counter()
        self.resolved = resolve_inputs(self.cfg, use_ray=True, progress=progress, prepared=self.prepared)
        self.log(f"[ray-xt] inputs ready in {time.perf_counter() - started:.0f}s (data: {self.resolved.data_root})")
        stages = expand(self.cfg)
        number = {s.key: i for i, s in enumerate(stages, 1)}
        done: dict[str, dict] = {}
        for stage in stages:
            record = self.store.get(stage)
            if record is not None:
                done[stage.key] = record
        pending = [s for s in stages if s.key not in done]
        self.log(f"[ray-xt] {len(stages)} stages: {len(done)} done before (skipped), {len(pending)} to run")
        self.progress = self._planned_progress(stages, pending, len(done))
        pool = self._start_trainer_pool(pending)
        try:
            self._run_pending(pending, done, number, len(stages))
        finally:
            if pool is not None:
                from ray_xt.trainer_hosts import stop_pool

                stop_pool(pool)
        self.log(f"[ray-xt] study {self.cfg.name}: {len(stages)} stages in {time.perf_counter() - started:.0f}s; "
                 f"features tokenised {self.features.misses}x, reused {self.features.hits}x (trials only read them)")
        return [done[s.key] for s in stages]

    def _run_pending(self, pending: list[Stage], done: dict[str, dict], number: dict[str, int], total: int) -> None:
        import ray

        t0 = time.perf_counter()
        runner = self.stage_runner()
        for stage in pending:
            runner.prepare(stage)
        if pending:
            self.log(f"[ray-xt] features ready in {time.perf_counter() - t0:.0f}s "
                     f"({self.features.misses} tokenised, {self.features.hits} reused)")
        _ = self.tracker.experiment_id  # create the store and experiment once, before concurrent writers start
        from ray_xt.mlflow_view import publish_runs_view

        self.log(f"[ray-xt] MLflow runs table: {publish_runs_view(self.tracker)}")
        self.summary_run_id = self.tracker.summary_run(self.cfg.name)
        self._report_progress()
        # Stage drivers prefer the study driver's node (the head on a cluster); if their node dies anyway, Ray
        # re-runs them (system failures only) and the re-run resumes the sweep from its experiment folder.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        remote = ray.remote(num_cpus=0, max_retries=3, scheduling_strategy=here)(execute_stage)
        context = self.context()
        running: dict = {}
        failures: list[str] = []
        while pending or running:
            ready = [s for s in pending if s.upstream is None or s.upstream.key in done]
            while ready and not failures and len(running) < self.cfg.parallel_stages:
                stage = ready.pop(0)
                pending.remove(stage)
                self.log(f"[ray-xt] stage {number[stage.key]}/{total} {stage.label}: started "
                         f"({'evaluation only' if stage.kind == 'retrieval' else f'{self.cfg.search.num_samples} trials'})")
                ref = remote.remote(context, stage, time.perf_counter())
                running[ref] = (stage, time.perf_counter())
            if not running:
                break  # only stages whose upstream failed are left
            finished, _ = ray.wait(list(running), num_returns=1)
            stage, t_start = running.pop(finished[0])
            try:
                record = ray.get(finished[0])
            except Exception as err:  # noqa: BLE001 - reported with the stage, the other stages still finish
                lines = [x for x in str(err).splitlines() if x.strip() and not x.startswith("(Background")]
                failures.append(f"{stage.label}: {type(err).__name__}: {(lines or [''])[-1][:300]}")
                self.log(f"[ray-xt] stage {number[stage.key]}/{total} FAILED: {failures[-1]}")
                continue
            record["seconds"] = time.perf_counter() - t_start
            self.store.put(stage, record)
            if stage.kind != "retrieval":
                from ray_xt.costs import ThroughputTable
                from ray_xt.retention import prune_finished_sweep

                # memoised now: its sweep keeps only the best model
                prune_finished_sweep(storage.join(self.storage.location_of(self.paths.tune), stage.name),
                                     record["sweep"]["best_model_dir"])
                # what trials measured refreshes `ray-xt plan`'s cost table
                ThroughputTable(storage.join(self.storage.root, "throughput.json")).add(
                    stage.scale, [t.get("examples_per_second") for t in record["sweep"].get("trials", [])])
            done[stage.key] = record
            self._log_done(number[stage.key], total, record)
            self._report_progress(stage, record)
        if failures:
            raise StageFailed(f"{len(failures)} stage(s) failed (finished stages are kept; re-run to continue):\n  - "
                              + "\n  - ".join(failures))

    def _planned_progress(self, stages: list[Stage], pending: list[Stage], done_before: int) -> StudyProgress:
        from ray_xt.costs import ThroughputTable, devices_per_trial, stage_device_hours

        table = ThroughputTable(storage.join(self.storage.root, "throughput.json"))
        devices = {devices_per_trial(self.cfg, scale)[0] for scale in self.cfg.scales}
        return StudyProgress(len(stages), done_before, {s.key: stage_device_hours(self.cfg, s, table) for s in pending},
                             device=devices.pop() if len(devices) == 1 else "device")

    def _report_progress(self, stage: Stage | None = None, record: StageRecord | None = None) -> None:
        """The progress line on the console (what `make cluster-logs` shows on re-attaching) and the same numbers
        as metrics of the study's MLflow summary run."""
        from ray_xt.costs import devices_per_trial

        if stage is not None and record is not None:
            self.progress.stage_done(stage.key, measured_device_hours(record, devices_per_trial(self.cfg, stage.scale)[1]))
        self.log(self.progress.line())
        self.tracker.log_metrics(self.summary_run_id, self.progress.metrics(), step=self.progress.done)

    def _driver_node_slots(self, sweeps: list[Stage]) -> tuple[str, int]:
        """The driver's node and how many of these stages' trials run on it at once."""
        import ray

        here = ray.get_runtime_context().get_node_id()
        node_cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == here), 0)
        per_trial = min(max(self.cfg.resources_for(s.scale)[0], 1e-3) for s in sweeps)
        return here, min(int(node_cpus // per_trial), self.cfg.parallel_stages * self.cfg.search.max_concurrent)

    def _start_trainer_pool(self, pending: list[Stage]):
        """The study's TrainerPool (ray_xt.trainer_hosts), with hosts for the driver node's trial slots already
        importing torch while features are prepared; None when no pending stage trains in hosts.

        Without hosts, a warm process per slot for the first sweeps' Tune trial actors (ray_xt.trial_workers;
        later sweeps find the ones their predecessors' actors asked for). With hosts, the first trials wait for
        a host's imports (~9 s of CPU) anyway, and processes prestarted now only slowed those down (measured:
        a study's first trial 3.4 s -> 5.4-5.8 s in bench/trial_fixed_cost.py)."""
        from ray_xt.trainer_hosts import pool_name, start_pool
        from ray_xt.trial_workers import prestart_for_tune

        sweeps = [s for s in pending if s.kind != "retrieval"]
        if not sweeps:
            return None
        in_hosts = [s for s in sweeps if hosted(self.cfg, s.scale)]
        here, slots = self._driver_node_slots(in_hosts or sweeps)
        if not in_hosts:
            prestart_for_tune(here, slots)
            return None
        self.trainer_pool = pool_name()
        pool = start_pool(self.trainer_pool)
        if slots > 0:
            pool.warm.remote(here, slots)
        return pool

    def _log_done(self, i: int, n: int, record: StageRecord) -> None:
        best = record["sweep"]
        extra = ""
        if "zero_shot" in record:
            extra = " zero-shot " + " ".join(f"{k}={v:.3f}" for k, v in record["zero_shot"].items())
        lr = f"best lr={best['best_learning_rate']:.2e} dev={best['best_score']:.3f}" if best.get("best_learning_rate") \
            else "evaluated"
        self.log(f"[ray-xt] stage {i}/{n} {record['label']} done in {record['seconds']:.0f}s: {lr}{extra}")



def execute_stage(context: StageContext, stage: Stage, _submitted: float) -> StageRecord:
    """One stage, run as a Ray task: its own Tune sweep (or evaluation), MLflow records, and its record back."""
    return StageRunner(context).run_stage(stage)


def hosted(cfg: StudyConfig, scale: str) -> bool:
    """Trials of this scale train in the study's warm trainer hosts: one-process CPU trials only."""
    _, gpus = cfg.resources_for(scale)
    return cfg.warm_trainers and gpus == 0 and cfg.workers_for(scale) == 1


def evaluate_languages(model_dir: str, task_name: str, feature_dirs: dict[str, dict[str, str]], cpus: float,
                       retrieval_layer: int | None = None) -> dict[str, dict]:
    """Per language: the scored split's score and metrics, and predictions of the submission split.

    BUCC's threshold is chosen on the eval (dev) split and applied unchanged to test.
    """
    import torch
    from transformers import AutoTokenizer

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.families.base import quiet_transformers

    torch.set_num_threads(max(1, int(cpus)))
    task = TASKS[task_name]
    family = family_of(task, layer=retrieval_layer) if task.family == "retrieval" else family_of(task)
    quiet_transformers()
    model_dir = str(storage.materialize(model_dir))  # an upstream checkpoint on URI storage: a node-local copy
    model = family.auto_class().from_pretrained(model_dir)
    pad_id = AutoTokenizer.from_pretrained(model_dir).pad_token_id
    if torch.cuda.is_available():
        model = model.cuda()
    results: dict[str, dict] = {}
    for lang, roles in feature_dirs.items():
        if "eval" not in roles:
            continue
        if task.family == "retrieval":
            family.threshold = None
        features, examples, _ = load_features(roles["eval"])
        evaluation = family.evaluate(model, features, examples, pad_id, task, lang)
        result = {"score": evaluation.score, "metrics": evaluation.metrics, "split": task.eval_split_for(lang)}
        if task.family == "retrieval" and "threshold" in evaluation.metrics:
            family.threshold = evaluation.metrics["threshold"]  # chosen on dev, applied unchanged to test
        if roles.get("submission") == roles["eval"]:
            result["submission"] = evaluation.submission
        elif "submission" in roles:
            features, examples, _ = load_features(roles["submission"])
            result["submission"] = family.evaluate(model, features, examples, pad_id, task, lang).submission
        results[lang] = result
    return results


def score_against_gold(data_root: Path, task_name: str, prediction: Path, lang: str) -> dict[str, dict]:
    """{lang: official metrics} of one submission file where gold labels exist (``<data root>/labels/``, written by
    `ray-xt data prepare` or the micro world): what the report compares with published test numbers."""
    from ray_xt.score import ScoreError, score_file

    gold = Path(data_root) / "labels" / task_name / prediction.name
    if not gold.is_file():
        return {}
    try:
        return {lang: score_file(task_name, prediction, gold, lang)}
    except ScoreError:  # labels that do not match this split (another data version): not compared
        return {}


def write_submission(path: Path, submission) -> None:
    """One XTREME prediction file: lines (tsv) or {question id: answer} (json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(submission, dict):
        path.write_text(json.dumps(submission, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    else:
        path.write_text("".join(f"{line}\n" for line in submission), encoding="utf-8")
