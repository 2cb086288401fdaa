"""Runs a study: data and models ready, stages swept in order, memoised on the study's storage.

``driver`` (the whole study), ``stage`` (one stage), ``zero_shot`` (evaluation and submissions), ``inputs``
(data and models made concrete), ``layout`` (folders, records and the shared parts)."""

from ray_xt.study.driver import StudyDriver
from ray_xt.study.inputs import Resolved, manifest_datasets, resolve_inputs
from ray_xt.study.layout import (
                                 StageStore,
                                 StudyParts,
                                 StudyPaths,
                                 absolute_uri,
                                 git_revision,
                                 node_local_storage,
                                 recordable,
                                 stage_store,
)
from ray_xt.study.stage import StageContext, StageFailed, StageRunner, execute_stage, hosted
from ray_xt.study.zero_shot import ZeroShot, evaluate_languages, score_against_gold, write_submission

__all__ = ["Resolved", "StageContext", "StageFailed", "StageRunner", "StageStore", "StudyDriver", "StudyParts",
           "StudyPaths", "ZeroShot", "absolute_uri", "evaluate_languages", "execute_stage", "git_revision", "hosted",
           "manifest_datasets", "node_local_storage", "recordable", "resolve_inputs", "score_against_gold", "stage_store",
           "write_submission"]
