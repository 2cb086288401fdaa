"""A checkpoint evaluated zero-shot on every language of its target task, its XTREME submission files written and
scored against gold labels where they exist."""

from __future__ import annotations

import json
from pathlib import Path

from ray_xt import storage
from ray_xt.config import StudyConfig
from ray_xt.records import StageRecord
from ray_xt.stages import Stage
from ray_xt.study.inputs import Resolved
from ray_xt.study.layout import StudyParts
from ray_xt.tasks.registry import TASKS


class ZeroShot:
    """A stage's zero-shot evaluation: the features of every language's scored and submission splits, the
    evaluation as a Ray task, the submission files, and the scores on the stage's MLflow run."""

    def __init__(self, cfg: StudyConfig, parts: StudyParts, resolved: Resolved, feature_args):
        self.cfg, self.parts, self.resolved, self._feature_args = cfg, parts, resolved, feature_args

    def eval_features(self, stage: Stage, labels: list[str]) -> dict[str, dict[str, str]]:
        """Per evaluated language, the features of its scored split (dev, or test where XTREME has no dev set for
        it; capped at max_eval_examples) and of its whole submission split: {lang: {"eval": path, "submission":
        path}}, one path for both where they are the same features."""
        assert self.resolved is not None
        task = TASKS[stage.task]
        tok = self.resolved.model_paths[stage.scale]
        langs = self.cfg.languages_for(stage.task)
        only = stage.condition.language
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
                    feature_dirs.setdefault(lang, {})[role] = str(self.parts.features.features(
                        root, task, split, [lang], tok, labels=labels, max_examples=max_eval if role == "eval" else None,
                        **self._feature_args(stage)))
        return {lang: {k: v for k, v in d.items() if v} for lang, d in feature_dirs.items()}

    def evaluate(self, stage: Stage, model_dir: str, labels: list[str]) -> dict:
        """A checkpoint evaluated on every language (a Ray task, so it runs on the cluster), and its XTREME
        submission files written under predictions/<stage name>/."""
        import ray

        assert self.resolved is not None
        task = TASKS[stage.task]
        feature_dirs = self.eval_features(stage, labels)
        cpus, gpus = self.cfg.resources_for(stage.scale)
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(evaluate_languages)
        results = ray.get(remote.remote(model_dir, stage.task, feature_dirs, cpus,
                                          self.cfg.trial_for(stage.task).retrieval_layer))
        out_dir = self.parts.paths.predictions / stage.name / stage.task
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
            "predictions_dir": self.parts.storage.publish(out_dir) if out_dir.exists() else None,
        }


    def log(self, parent: str, record: StageRecord) -> None:
        scores = record["zero_shot"]
        transfer = [v for lang, v in scores.items() if lang != "en"]
        # the runs table's zero-shot column (ray_xt.mlflow_view): the mean over the target languages but English
        average = {"zero_shot.avg": sum(transfer) / len(transfer)} if transfer else {}
        self.parts.tracker.log_metrics(parent, {**{f"zero_shot.{lang}": v for lang, v in scores.items()}, **average}, 0)
        if record.get("predictions_dir"):
            local = self.parts.storage.local_of(record["predictions_dir"])
            self.parts.tracker.log_artifacts(parent, str(local if local.is_dir() else storage.materialize(
                record["predictions_dir"])), "predictions")



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
    from ray_xt.families.retrieval import Retrieval

    torch.set_num_threads(max(1, int(cpus)))
    task = TASKS[task_name]
    family = family_of(task, layer=retrieval_layer) if task.family == "retrieval" else family_of(task)
    quiet_transformers()
    model_dir = str(storage.materialize(model_dir))  # an upstream checkpoint on URI storage: a node-local copy
    model = family.auto_class().from_pretrained(model_dir)
    pad_id = AutoTokenizer.from_pretrained(model_dir).pad_token_id
    if torch.cuda.is_available():
        model = model.cuda()
    retrieval = family if isinstance(family, Retrieval) else None  # BUCC's threshold: chosen on dev, kept for test
    results: dict[str, dict] = {}
    for lang, roles in feature_dirs.items():
        if "eval" not in roles:
            continue
        if retrieval is not None:
            retrieval.threshold = None
        features, examples, _ = load_features(roles["eval"])
        evaluation = family.evaluate(model, features, examples, pad_id, task, lang)
        result = {"score": evaluation.score, "metrics": evaluation.metrics, "split": task.eval_split_for(lang)}
        if retrieval is not None and "threshold" in evaluation.metrics:
            retrieval.threshold = evaluation.metrics["threshold"]  # chosen on dev, applied unchanged to test
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
