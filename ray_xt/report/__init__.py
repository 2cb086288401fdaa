"""The study's report: ``frames`` (the numbers: comparison tables, statistics, XTREME test scores), ``publish``
(written to disk and to MLflow); the headline is ``ray_xt.headline``, the figures ``ray_xt.figures``."""

from ray_xt.report.frames import (
                                  PUBLISHED_METRIC,
                                  comparison_tables,
                                  dev_choice,
                                  published_comparison,
                                  scores_frame,
                                  statistics,
                                  summary_table,
                                  xtreme_test_scores,
)
from ray_xt.report.publish import NOTE_LIMIT, headline_of, log_report, write_report

__all__ = ["NOTE_LIMIT", "PUBLISHED_METRIC", "comparison_tables", "dev_choice", "headline_of", "log_report",
           "published_comparison", "scores_frame", "statistics", "summary_table", "write_report",
           "xtreme_test_scores"]
