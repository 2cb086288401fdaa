"""Typed study configuration: one YAML per study, validated before Ray starts; every error names the field path
and what would be valid.

``strict`` (what every section refuses), ``sections`` (the file's sections), ``study`` (the whole study, its
cross-checks, per-scale resolution), ``resolution`` (the resolved trial), ``loading`` (YAML, ``--set``, errors),
``explain`` (`ray-xt config explain`)."""

from ray_xt.config.explain import explain
from ray_xt.config.loading import apply_overrides, load_study, only_seeds, parse_study
from ray_xt.config.resolution import ResolvedTrial
from ray_xt.config.sections import (
                                    FEATURE_FIELDS,
                                    PLACEMENT_FIELDS,
                                    DataConfig,
                                    IntermediateConfig,
                                    LogRange,
                                    MicroWorldConfig,
                                    MLMCorpus,
                                    PowerConfig,
                                    ScaleOverride,
                                    SchedulerConfig,
                                    SearchConfig,
                                    TargetConfig,
                                    TaskOverride,
                                    TrackingConfig,
                                    TrialConfig,
)
from ray_xt.config.strict import ConfigError, Strict
from ray_xt.config.study import StudyConfig, translate_languages

__all__ = ["FEATURE_FIELDS", "PLACEMENT_FIELDS", "ConfigError", "DataConfig", "IntermediateConfig", "LogRange",
           "MLMCorpus", "MicroWorldConfig", "PowerConfig", "ResolvedTrial", "ScaleOverride", "SchedulerConfig",
           "SearchConfig", "Strict", "StudyConfig", "TargetConfig", "TaskOverride", "TrackingConfig", "TrialConfig",
           "apply_overrides", "explain", "load_study", "only_seeds", "parse_study", "translate_languages"]
