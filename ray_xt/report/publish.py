"""The report written: markdown, CSVs and figures on disk, and the study's MLflow summary run (its description the
headline)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ray_xt.figures import heatmap, plot
from ray_xt.records import StageRecord
from ray_xt.report.frames import (
    comparison_tables,
    published_comparison,
    render_markdown,
    render_statistics,
    scores_frame,
    statistics,
    summary_table,
)


def write_report(records: list[StageRecord], out_dir: Path, sequential=None) -> tuple[str, list[Path]]:
    """Writes comparison.md, scores.csv, the statistics tables and the figures; returns the markdown and the files.
    ``sequential``: a sequential study's looks (``ray_xt.sequential.SequentialState``): the headline then carries
    repeated p-values and repeated confidence intervals, and the rule and rounds are stated."""
    from ray_xt.contrasts import declared
    from ray_xt.headline import forest_plot, primary_table, render_headline
    from ray_xt.seed_checks import collapsed_stages, mark_collapsed, render_collapsed

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = scores_frame(records)
    if frame.empty:
        return "(no finished target stages yet)", []
    frame = mark_collapsed(frame)
    flagged = collapsed_stages(frame)
    kept = frame[~frame.collapsed].drop(columns="collapsed")  # collapsed seeds enter no interval
    if kept.empty:
        markdown = render_collapsed(flagged) + "\n(every stage collapsed: nothing to compare)\n"
        return markdown, _write_markdown_and_scores(out_dir, markdown, frame)
    contrasts = declared(set(frame.condition))
    tables = comparison_tables(kept)
    stats = statistics(kept, contrasts)
    primary = primary_table(stats, contrasts)
    rounds = ""
    if sequential is not None:
        from ray_xt.sequential import render_sequential, sequential_rows

        primary, rounds = sequential_rows(sequential), render_sequential(sequential)
    parts = [rounds, render_headline(primary, contrasts, render_collapsed(flagged)) or render_collapsed(flagged),
             "## Details\n"]
    for scale in dict.fromkeys(kept.scale):
        parts.append(f"### {scale}: mean zero-shot score per target task (non-English languages, scored splits "
                     "(dev; test where a language has no dev set), each task's metric, mean over seeds; † the "
                     "target's own training data)\n")
        parts.append(summary_table(kept, scale).to_markdown() + "\n")
    published = published_comparison(records, kept)
    if not published.empty:
        parts.append("### XTREME test scores, like for like (the published metric — QA: F1 — over XTREME's "
                     "languages, English included where XTREME includes it; mean over seeds; the best English "
                     "intermediate task chosen on the dev zero-shot average, among the single tasks — multi-task "
                     "beside it, not a candidate; † the target's own training data; published numbers from "
                     "ray_xt/paper.py, marked unverified where no stored source confirms them)\n")
        parts.append(published.to_markdown(index=False) + "\n")
    parts.append(render_statistics(stats))
    parts.append(render_markdown(tables))
    markdown = "\n".join(p for p in parts if p)
    files = _write_markdown_and_scores(out_dir, markdown, frame)
    for name, table in stats.items():
        files.append(out_dir / f"{name}.csv")
        table.to_csv(files[-1], index=False)
    if not primary.empty:
        files.append(out_dir / "primary_contrasts.csv")
        primary.to_csv(files[-1], index=False)
        figure = forest_plot(primary, contrasts, out_dir / "headline.png")
        if figure is not None:
            files.append(figure)
    files.append(plot(tables, out_dir / "comparison.png"))
    heat = None
    if contrasts:
        name = ("en_vs_target_heatmap.png" if contrasts[0].second.startswith("translate-train")
                else f"{contrasts[0].table}_heatmap.png")
        heat = heatmap(stats, contrasts[0], out_dir / name)
    if heat:
        files.append(heat)
    return markdown, [f for f in files if f is not None]


def _write_markdown_and_scores(out_dir: Path, markdown: str, frame: pd.DataFrame) -> list[Path]:
    files = [out_dir / "comparison.md", out_dir / "scores.csv"]
    files[0].write_text(markdown, encoding="utf-8")
    frame.to_csv(files[1], index=False)
    return files


NOTE_LIMIT = 7500  # MLflow warns about and cuts a run description past 8,000 characters


def headline_of(markdown: str) -> str:
    """The run description: the report's headline section (else its beginning), whole sections within the limit,
    and where the rest is."""
    end = markdown.find("\n## ", markdown.find("## Headline") + 1) if "## Headline" in markdown else -1
    head = markdown[:end] if end > 0 else markdown
    if len(head) > NOTE_LIMIT:
        head = head[:head.rfind("\n", 0, NOTE_LIMIT)]
    return head + "\n\n(Full report: artifact `comparison.md`; figures `headline.png`, `comparison.png`.)"


def log_report(tracker, study: str, files: list[Path], tables_markdown: str) -> str:
    """A study-summary run in MLflow holding the report files (found again by key, never duplicated); its
    description is the headline."""
    run_id = tracker.summary_run(study)
    for f in files:
        tracker.client.log_artifact(run_id, str(f))
    tracker.client.set_tag(run_id, "mlflow.note.content", headline_of(tables_markdown))
    tracker.finish(run_id)
    return run_id
