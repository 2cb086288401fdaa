"""Per-scale comparison: no intermediate vs English vs target-language intermediate training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def scores_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (scale, target task, seed, condition, intermediate task, language)."""
    rows = []
    for rec in records:
        if "zero_shot" not in rec:
            continue
        tags = rec["stage"]
        condition, only = tags["condition"], None
        if condition.startswith("translate-train:"):  # one model per language: it speaks for that language only
            condition, only = "translate-train-each", condition.split(":", 1)[1]
        for lang, score in rec["zero_shot"].items():
            if only and lang != only:
                continue
            rows.append({
                "scale": tags["scale"], "target": tags["task"], "seed": int(tags["seed"]),
                "condition": condition, "intermediate": tags["intermediate_task"],
                "language": lang, "score": 100.0 * score,
            })
    return pd.DataFrame(rows)


def _column(condition: str, intermediate: str) -> str:
    if condition == "none":
        return "baseline"
    return "multi-task" if condition == "multi-task" else f"{intermediate}:{condition}"


def comparison_tables(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (scale, target task): languages x conditions (mean over seeds), Δ vs baseline, and an average row."""
    tables = {}
    frame = frame.assign(column=[_column(c, i) for c, i in zip(frame.condition, frame.intermediate)])
    for (scale, target), part in frame.groupby(["scale", "target"], sort=False):
        table = part.pivot_table(index="language", columns="column", values="score", aggfunc="mean")
        ordered = ["baseline"] + sorted(c for c in table.columns if c != "baseline")
        table = table[[c for c in ordered if c in table.columns]]
        # retrieval tasks pair each language with English: they have no "en" row
        langs = [lang for lang in ["en"] if lang in table.index] + sorted(lang for lang in table.index if lang != "en")
        table = table.loc[langs]
        zero_shot = [lang for lang in langs if lang != "en"]
        if zero_shot:
            table.loc["avg (zero-shot)"] = table.loc[zero_shot].mean()
        if "baseline" in table.columns:
            for col in list(table.columns):
                if col != "baseline" and not col.startswith("Δ"):
                    table[f"Δ {col}"] = table[col] - table["baseline"]
        tables[(scale, target)] = table.round(1)
    return tables


def summary_table(frame: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Target tasks (rows, plus the XTREME-style average) x conditions: mean zero-shot score over languages
    other than English and over seeds; Δ over the baseline; the paper's baseline where it applies."""
    from ray_xt.paper import paper_baseline

    part = frame[(frame.scale == scale) & (frame.language != "en")]
    part = part.assign(column=[_column(c, i) for c, i in zip(part.condition, part.intermediate)])
    table = part.pivot_table(index="target", columns="column", values="score", aggfunc="mean")
    ordered = ["baseline"] + sorted(c for c in table.columns if c != "baseline")
    table = table[[c for c in ordered if c in table.columns]]
    table.loc["XTREME avg"] = table.mean()
    if "baseline" in table.columns:
        for col in [c for c in table.columns if c != "baseline"]:
            table[f"Δ {col}"] = table[col] - table["baseline"]
    papers = {t: paper_baseline(scale, t) for t in table.index}
    if any(v is not None for v in papers.values()):
        table["paper baseline"] = [papers[t] if papers[t] is not None else float("nan") for t in table.index]
        # the paper's average improvement of English intermediate training, beside our XTREME-avg Δ
        from ray_xt.paper import paper_improvement

        row = {c: paper_improvement(scale, c[2:].split(":")[0]) for c in table.columns
               if c.startswith("Δ ") and c.endswith(":en")}
        if any(v is not None for v in row.values()):
            table.loc["paper avg Δ"] = [row.get(c) if row.get(c) is not None else float("nan") for c in table.columns]
    return table.round(1)


def _ci_text(mean: float, low: float, high: float) -> str:
    if pd.isna(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def statistics(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """EN-vs-target-language differences per task and language with 95% bootstrap CIs over seeds, the gains
    of each over the baseline, and the scale interaction (difference at the largest minus the smallest scale)."""
    from ray_xt.stats import difference_table, paired_differences, scale_interaction, with_average_language

    out: dict[str, pd.DataFrame] = {}
    scales = list(dict.fromkeys(frame.scale))
    for target_condition in ("translate-train", "translate-train-each"):
        name = target_condition.replace("-", "_")
        en_vs_tt = with_average_language(paired_differences(frame, "en", target_condition))
        if not en_vs_tt.empty:
            out[f"en_minus_{name}"] = difference_table(en_vs_tt)
            if len(scales) > 1:
                out[f"scale_interaction_{name}"] = scale_interaction(en_vs_tt, scales[0], scales[-1])
    baseline = frame[frame.condition == "none"]
    for condition in ("en", "translate-train", "translate-train-each"):
        part = frame[frame.condition == condition]
        if part.empty or baseline.empty:
            continue
        expanded = pd.concat([baseline.assign(intermediate=i) for i in part.intermediate.unique()])
        gains = with_average_language(paired_differences(pd.concat([part, expanded]), condition, "none"))
        if not gains.empty:
            out[f"gain_{condition}"] = difference_table(gains)
    return out


def render_statistics(stats: dict[str, pd.DataFrame]) -> str:
    parts = []
    titles = {
        "en_minus_translate_train": "English minus target-language intermediate training (points, mean over seeds "
                                    "[95% bootstrap CI])",
        "gain_en": "Gain of English intermediate training over no intermediate training",
        "en_minus_translate_train_each": "English minus per-language target-language intermediate training "
                                         "(points, mean over seeds [95% bootstrap CI])",
        "gain_translate-train": "Gain of target-language intermediate training (all languages) over none",
        "gain_translate-train-each": "Gain of per-language target-language intermediate training over none",
    }
    for name, table in stats.items():
        if name.startswith("scale_interaction"):
            t = table.assign(value=[_ci_text(m, lo, hi) for m, lo, hi in zip(table.interaction, table.ci_low,
                                                                             table.ci_high)])
            small, large = table.small.iloc[0], table.large.iloc[0]
            wide = t.pivot_table(index="language", columns=["target", "intermediate"], values="value", aggfunc="first")
            which = "per-language " if name.endswith("each") else ""
            parts.append(f"### Scale interaction: (English − {which}target-language) at {large} minus at {small}\n")
        else:
            t = table.assign(value=[_ci_text(m, lo, hi) for m, lo, hi in zip(table["mean"], table.ci_low,
                                                                             table.ci_high)])
            wide = t.pivot_table(index="language", columns=["scale", "target", "intermediate"], values="value",
                                 aggfunc="first")
            parts.append(f"### {titles.get(name, name)}\n")
        wide.columns = ["/".join(str(x) for x in c) for c in wide.columns]
        parts.append(wide.to_markdown() + "\n")
    return "\n".join(parts)


def heatmap(stats: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """English minus target-language difference per language (rows) and scale/task (columns)."""
    table = stats.get("en_minus_translate_train")
    if table is None:
        table = stats.get("en_minus_translate_train_each")
    if table is None or table.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = table.pivot_table(index="language", columns=["scale", "target", "intermediate"], values="mean")
    limit = max(1.0, float(np.nanmax(np.abs(wide.to_numpy()))))  # NaN cells (no English row) ignored
    fig, ax = plt.subplots(figsize=(1.4 * wide.shape[1] + 3, 0.45 * wide.shape[0] + 2))
    image = ax.imshow(wide.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(wide.shape[1]), ["\n".join(str(x) for x in c) for c in wide.columns], fontsize=7)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=8)
    for (i, j), v in np.ndenumerate(wide.to_numpy()):
        if not np.isnan(v):
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="English − target-language intermediate (points)")
    ax.set_title("English vs target-language intermediate training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_markdown(tables: dict[tuple[str, str], pd.DataFrame]) -> str:
    parts = []
    for (scale, target), table in tables.items():
        parts.append(f"### {target} on {scale} (zero-shot dev score, mean over seeds)\n")
        parts.append(table.to_markdown() + "\n")
    return "\n".join(parts)


def plot(tables: dict[tuple[str, str], pd.DataFrame], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4), squeeze=False)
    for ax, ((scale, target), table) in zip(axes[0], tables.items()):
        cols = [c for c in table.columns if not c.startswith("Δ")]
        table[cols].plot.bar(ax=ax, rot=45)
        ax.set_title(f"{target} — {scale}")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(records: list[dict], out_dir: Path) -> tuple[str, list[Path]]:
    """Writes comparison.md, scores.csv and comparison.png; returns the markdown and the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = scores_frame(records)
    if frame.empty:
        return "(no finished target stages yet)", []
    tables = comparison_tables(frame)
    parts = []
    for scale in dict.fromkeys(frame.scale):
        parts.append(f"### {scale}: mean zero-shot score per target task (non-English languages, mean over seeds)\n")
        parts.append(summary_table(frame, scale).to_markdown() + "\n")
    stats = statistics(frame)
    parts.append(render_statistics(stats))
    parts.append(render_markdown(tables))
    markdown = "\n".join(p for p in parts if p)
    files = [out_dir / "comparison.md", out_dir / "scores.csv"]
    files[0].write_text(markdown, encoding="utf-8")
    frame.to_csv(files[1], index=False)
    for name, table in stats.items():
        files.append(out_dir / f"{name}.csv")
        table.to_csv(files[-1], index=False)
    files.append(plot(tables, out_dir / "comparison.png"))
    heat = heatmap(stats, out_dir / "en_vs_target_heatmap.png")
    if heat:
        files.append(heat)
    return markdown, files


def log_report(tracker, study: str, files: list[Path], tables_markdown: str) -> str:
    """A study-summary run in MLflow holding the report files (found again by key, never duplicated)."""
    run_id = tracker.run_for(f"study/{study}", f"{study}-summary", {"stage": "summary", "study": study})
    for f in files:
        tracker.client.log_artifact(run_id, str(f))
    tracker.client.set_tag(run_id, "mlflow.note.content", tables_markdown[:50000])
    tracker.finish(run_id)
    return run_id
