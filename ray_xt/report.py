"""Per-scale comparison: no intermediate vs English vs target-language intermediate training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ray_xt.records import StageRecord
from ray_xt.stages import Condition


def scores_frame(records: list[StageRecord]) -> pd.DataFrame:
    """One row per (scale, target task, seed, condition, intermediate task, language)."""
    rows = []
    for rec in records:
        if "zero_shot" not in rec:
            continue
        tags = rec["stage"]
        parsed = Condition.parse(tags["condition"])
        condition, only = parsed.group, parsed.language  # one model per language speaks for that language only
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
    other than English and over seeds, on the scored (mostly dev) splits; Δ over the baseline. Published
    numbers are test-set numbers: they stand beside our test scores (``published_comparison``), not here."""
    part = frame[(frame.scale == scale) & (frame.language != "en")]
    part = part.assign(column=[_column(c, i) for c, i in zip(part.condition, part.intermediate)])
    table = part.pivot_table(index="target", columns="column", values="score", aggfunc="mean")
    ordered = ["baseline"] + sorted(c for c in table.columns if c != "baseline")
    table = table[[c for c in ordered if c in table.columns]]
    table.loc["XTREME avg"] = table.mean()
    if "baseline" in table.columns:
        for col in [c for c in table.columns if c != "baseline"]:
            table[f"Δ {col}"] = table[col] - table["baseline"]
    return table.round(1)


# the published metric per task (the QA columns of the published tables are F1)
PUBLISHED_METRIC = {"xnli": "accuracy", "pawsx": "accuracy", "tatoeba": "accuracy", "udpos": "f1", "panx": "f1",
                    "bucc2018": "f1", "xquad": "f1", "mlqa": "f1", "tydiqa": "f1"}


def xtreme_test_scores(records: list[StageRecord]) -> pd.DataFrame:
    """Per (scale, target, condition, intermediate, seed): the test-set score in the published metric, averaged
    over XTREME's languages for the task (English included where XTREME includes it), from the submission files
    scored against gold labels (``test_metrics`` of each record); ``languages`` says how many were there."""
    from ray_xt.tasks.registry import TASKS

    rows = []
    for rec in records:
        metrics = rec.get("test_metrics")
        tags = rec["stage"]
        if not metrics or tags["task"] not in PUBLISHED_METRIC or Condition.parse(tags["condition"]).language:
            continue
        wanted = TASKS[tags["task"]].languages
        values = [metrics[lang][PUBLISHED_METRIC[tags["task"]]] for lang in wanted if lang in metrics]
        if values:
            rows.append({"scale": tags["scale"], "target": tags["task"], "condition": tags["condition"],
                         "intermediate": tags["intermediate_task"], "seed": int(tags["seed"]),
                         "score": float(np.mean(values)), "languages": len(values), "of": len(wanted)})
    return pd.DataFrame(rows)


def published_comparison(records: list[StageRecord]) -> pd.DataFrame:
    """Like for like: our XTREME test scores (published metric, XTREME's language list, mean over seeds) of the
    baseline and of the best English intermediate task per target, beside the published XLM-R large and
    X-STILTs test numbers for the scale they describe, each marked confirmed or unverified."""
    from ray_xt.paper import label, paper_baseline, paper_best_intermediate

    scores = xtreme_test_scores(records)
    if scores.empty:
        return pd.DataFrame()
    rows = []
    for (scale, target), part in scores.groupby(["scale", "target"], sort=False):
        coverage = part["languages"].min()
        note = "" if coverage == part["of"].iloc[0] else f" ({coverage} of {part['of'].iloc[0]} languages)"
        base = part[part.condition == "none"]["score"].mean()
        english = part[part.condition == "en"].groupby("intermediate")["score"].mean()
        best = english.idxmax() if not english.empty else None
        published, stilts = paper_baseline(scale, target), paper_best_intermediate(scale, target)
        rows.append({"scale": scale, "target": target, "metric": PUBLISHED_METRIC[target] + note,
                     "ours: baseline (test)": round(base, 1) if not np.isnan(base) else None,
                     "ours: best English intermediate (test)": f"{english.max():.1f} ({best})" if best else None,
                     "published XLM-R large": label(published) if published else "",
                     "published X-STILTs": label(stilts) if stilts else ""})
    return pd.DataFrame(rows)


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ci_text(mean: float, low: float, high: float) -> str:
    if pd.isna(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


CONTRASTS = {
    "translate-train": "English − target-language (one model on all target languages)",
    "translate-train-each": "English − target-language (one model per language)",
}
ASYMMETRY_NOTE = (
    "Which pair is compared: `en` is one model for all languages. `translate-train` is also one model, trained on a "
    "size-matched mixture of the target languages: the difference is the language of the data. "
    "`translate-train-each` is one model per language, each specialised to it: the difference mixes the data's "
    "language with that specialisation. Where a study has both, both are shown against `en`.")


def _mark_same_data(table: pd.DataFrame) -> pd.DataFrame:
    from ray_xt.tasks.registry import shared_training_data

    return table.assign(same_data=[shared_training_data(i, t) or "" for i, t in zip(table.intermediate, table.target)])


def statistics(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """EN-vs-target-language differences per task and language (t intervals over seeds, p, Holm-adjusted p), the
    gains of each condition over the baseline, and the scale interaction (the difference at the largest scale
    minus at the smallest, Welch interval); same-data pairs marked (``same_data``)."""
    from ray_xt.stats import difference_table, paired_differences, scale_interaction, with_average_language

    out: dict[str, pd.DataFrame] = {}
    scales = list(dict.fromkeys(frame.scale))
    for target_condition in ("translate-train", "translate-train-each"):
        name = target_condition.replace("-", "_")
        en_vs_tt = with_average_language(paired_differences(frame, "en", target_condition))
        if not en_vs_tt.empty:
            out[f"en_minus_{name}"] = _mark_same_data(difference_table(en_vs_tt))
            if len(scales) > 1:
                out[f"scale_interaction_{name}"] = _mark_same_data(scale_interaction(en_vs_tt, scales[0], scales[-1]))
    with_mlm = with_average_language(paired_differences(frame, "mlm", "en"))
    if not with_mlm.empty:
        out["mlm_minus_en"] = _mark_same_data(difference_table(with_mlm))
    baseline = frame[frame.condition == "none"]
    for condition in ("en", "translate-train", "translate-train-each", "mlm"):
        part = frame[frame.condition == condition]
        if part.empty or baseline.empty:
            continue
        expanded = pd.concat([baseline.assign(intermediate=i) for i in part.intermediate.unique()])
        gains = with_average_language(paired_differences(pd.concat([part, expanded]), condition, "none"))
        if not gains.empty:
            out[f"gain_{condition}"] = _mark_same_data(difference_table(gains))
    return out


def primary_contrasts(stats: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The contrasts declared up front: per (target, intermediate task) and condition pair, the language-averaged
    English − target-language difference at each scale, and its scale interaction; Holm-adjusted over them."""
    from ray_xt.stats import ZERO_SHOT_AVERAGE, holm

    rows = []
    for condition, label in CONTRASTS.items():
        name = condition.replace("-", "_")
        diff = stats.get(f"en_minus_{name}")
        if diff is not None:
            for r in diff[diff.language == ZERO_SHOT_AVERAGE].itertuples():
                rows.append({"contrast": label, "target": r.target, "intermediate": r.intermediate, "scale": r.scale,
                             "mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high, "seeds": r.seeds, "p": r.p,
                             "same_data": r.same_data})
        inter = stats.get(f"scale_interaction_{name}")
        if inter is not None:
            for r in inter[inter.language == ZERO_SHOT_AVERAGE].itertuples():
                rows.append({"contrast": label, "target": r.target, "intermediate": r.intermediate,
                             "scale": f"{r.large} − {r.small}", "mean": r.interaction, "ci_low": r.ci_low,
                             "ci_high": r.ci_high, "seeds": r.seeds, "p": r.p, "same_data": r.same_data})
    table = pd.DataFrame(rows)
    if not table.empty:
        from ray_xt.scales import SCALES

        ladder = {name: i for i, name in enumerate(SCALES)}  # small to large, the interaction after them
        order = [ladder.get(scale, len(ladder)) for scale in table.scale]
        table = table.assign(_order=order).sort_values(["contrast", "target", "intermediate", "_order"],
                                                       kind="stable").drop(columns="_order").reset_index(drop=True)
        transfer = table.same_data == ""
        table["p_holm"] = np.nan
        table.loc[transfer, "p_holm"] = holm(table.loc[transfer, "p"].to_numpy())
        table.loc[~transfer, "p_holm"] = holm(table.loc[~transfer, "p"].to_numpy())
    return table


def _p_text(p: float) -> str:
    return "–" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def render_headline(primary: pd.DataFrame) -> str:
    """The answer at a glance: language-averaged English − target-language differences per scale and their
    scale interaction, transfer pairs first, same-data pairs apart."""
    if primary.empty:
        return ""
    parts = ["## Headline: English − target-language intermediate training, averaged over the zero-shot languages\n",
             "Points; mean over seeds [95% t interval, df = seeds − 1]; a scale row `large − small` is the scale "
             "interaction (Welch interval over the two scales' seeds). p: two-sided; Holm: adjusted over the "
             "primary contrasts of this table. " + ASYMMETRY_NOTE + "\n"]

    def table(rows: pd.DataFrame) -> str:
        shown = rows.assign(difference=[_ci_text(m, lo, hi) for m, lo, hi in zip(rows["mean"], rows.ci_low, rows.ci_high)],
                            p=[_p_text(p) for p in rows.p], Holm=[_p_text(p) for p in rows.p_holm])
        return shown[["contrast", "target", "intermediate", "scale", "difference", "seeds", "p", "Holm"]].to_markdown(
            index=False) + "\n"

    transfer, same = primary[primary.same_data == ""], primary[primary.same_data != ""]
    if not transfer.empty:
        parts += ["### Transfer pairs (the intermediate task is not the target's training data)\n", table(transfer)]
    if not same.empty:
        reasons = "; ".join(sorted(set(f"{i} → {t}: {why}" for i, t, why in zip(same.intermediate, same.target,
                                                                                  same.same_data))))
        parts += [f"### Same-data pairs, not transfer ({reasons})\n", table(same)]
    return "\n".join(parts)


def forest_plot(primary: pd.DataFrame, path: Path) -> Path | None:
    """The headline figure: one row per (target, intermediate, contrast), a point and interval per scale and for
    the scale interaction; same-data pairs in a panel of their own."""
    if primary.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("transfer pairs", primary[primary.same_data == ""]), ("same-data pairs (not transfer)",
                                                                      primary[primary.same_data != ""])]
    groups = [(title, g) for title, g in groups if not g.empty]
    heights = [max(2.0, 0.45 * g.groupby(["target", "intermediate", "contrast"]).ngroups + 1.2) for _, g in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    scales = list(dict.fromkeys(primary.scale))
    colours = {s: plt.cm.tab10(i) for i, s in enumerate(scales)}
    for ax, (title, part) in zip(axes[:, 0], groups):
        keys = list(dict.fromkeys(zip(part.target, part.intermediate, part.contrast)))
        for row, key in enumerate(keys):
            sub = part[(part.target == key[0]) & (part.intermediate == key[1]) & (part.contrast == key[2])]
            for k, r in enumerate(sub.itertuples()):
                y = row + (k - (len(sub) - 1) / 2) * 0.18
                err = None if pd.isna(r.ci_low) else [[r.mean - r.ci_low], [r.ci_high - r.mean]]
                ax.errorbar(r.mean, y, xerr=err, fmt="D" if "−" in r.scale else "o", color=colours[r.scale],
                            capsize=3, label=r.scale)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(keys)), [f"{t} ← {i}\n{'each language' if 'per language' in c else 'all languages'}"
                                         for t, i, c in keys], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("English − target-language intermediate training (points, 95% interval; "
                           "left of 0: target-language training better)")
    fig.suptitle("Does English intermediate training help more than target-language training, and does scale change it?",
                 fontsize=10)
    return _save_figure(fig, path)


def render_statistics(stats: dict[str, pd.DataFrame]) -> str:
    parts = []
    titles = {
        "en_minus_translate_train": "English minus target-language intermediate training (points, mean over seeds "
                                    "[95% t interval]; * Holm-adjusted p < 0.05 over this table's languages)",
        "gain_en": "Gain of English intermediate training over no intermediate training",
        "en_minus_translate_train_each": "English minus per-language target-language intermediate training "
                                         "(points, mean over seeds [95% t interval]; * Holm-adjusted p < 0.05)",
        "gain_translate-train": "Gain of target-language intermediate training (all languages) over none",
        "gain_translate-train-each": "Gain of per-language target-language intermediate training over none",
        "mlm_minus_en": "English intermediate training with target-language MLM mixed in, minus without it (points, "
                        "mean over seeds [95% t interval]; * Holm-adjusted p < 0.05)",
        "gain_mlm": "Gain of English intermediate training with target-language MLM over none",
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
            star = ["*" if p < 0.05 else "" for p in table.p_holm.fillna(1.0)]
            t = table.assign(value=[_ci_text(m, lo, hi) + s for m, lo, hi, s in zip(table["mean"], table.ci_low,
                                                                                   table.ci_high, star)])
            wide = t.pivot_table(index="language", columns=["scale", "target", "intermediate"], values="value",
                                 aggfunc="first")
            parts.append(f"### {titles.get(name, name)}\n")
        wide.columns = ["/".join(str(x) for x in c) for c in wide.columns]
        parts.append(wide.to_markdown() + "\n")
    return "\n".join(parts)


def heatmap(stats: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """English minus target-language difference per language (rows) and scale/task (columns), each cell with its
    interval; a frame around cells whose Holm-adjusted p is below 0.05."""
    table = stats.get("en_minus_translate_train")
    if table is None:
        table = stats.get("en_minus_translate_train_each")
    if table is None or table.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["scale", "target", "intermediate"]
    wide = table.pivot_table(index="language", columns=columns, values="mean")
    low = table.pivot_table(index="language", columns=columns, values="ci_low").reindex_like(wide)
    high = table.pivot_table(index="language", columns=columns, values="ci_high").reindex_like(wide)
    sig = table.pivot_table(index="language", columns=columns, values="p_holm").reindex_like(wide)
    limit = max(1.0, float(np.nanmax(np.abs(wide.to_numpy()))))  # NaN cells (no English row) ignored
    fig, ax = plt.subplots(figsize=(min(1.6 * wide.shape[1] + 3, 18), 0.6 * wide.shape[0] + 2))
    image = ax.imshow(wide.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(wide.shape[1]), ["\n".join(str(x) for x in c) for c in wide.columns], fontsize=7)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=8)
    for (i, j), v in np.ndenumerate(wide.to_numpy()):
        if np.isnan(v):
            continue
        lo, hi = low.to_numpy()[i, j], high.to_numpy()[i, j]
        text = f"{v:+.1f}" + ("" if np.isnan(lo) else f"\n[{lo:+.1f}, {hi:+.1f}]")
        ax.text(j, i, text, ha="center", va="center", fontsize=6)
        if sig.to_numpy()[i, j] < 0.05:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, color="black"))
    fig.colorbar(image, ax=ax, label="English − target-language intermediate (points)")
    ax.set_title("English vs target-language intermediate training (95% t intervals; framed: Holm p < 0.05)",
                 fontsize=9)
    return _save_figure(fig, path)


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

    cols = min(3, len(tables))  # a grid read on a screen, not one strip of panels
    rows = -(-len(tables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(tables):]:
        ax.set_visible(False)
    for ax, ((scale, target), table) in zip(axes.flat, tables.items()):
        cols = [c for c in table.columns if not c.startswith("Δ")]
        table[cols].plot.bar(ax=ax, rot=45)
        ax.set_title(f"{target} — {scale}")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    return _save_figure(fig, path)


def write_report(records: list[StageRecord], out_dir: Path) -> tuple[str, list[Path]]:
    """Writes comparison.md, scores.csv and comparison.png; returns the markdown and the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = scores_frame(records)
    if frame.empty:
        return "(no finished target stages yet)", []
    tables = comparison_tables(frame)
    stats = statistics(frame)
    primary = primary_contrasts(stats)
    parts = [render_headline(primary), "## Details\n"]
    for scale in dict.fromkeys(frame.scale):
        parts.append(f"### {scale}: mean zero-shot score per target task (non-English languages, scored splits "
                     "(dev; test where a language has no dev set), mean over seeds)\n")
        parts.append(summary_table(frame, scale).to_markdown() + "\n")
    published = published_comparison(records)
    if not published.empty:
        parts.append("### XTREME test scores, like for like (the published metric — QA: F1 — over XTREME's "
                     "languages, English included where XTREME includes it; mean over seeds; published numbers "
                     "from ray_xt/paper.py, marked unverified where no stored source confirms them)\n")
        parts.append(published.to_markdown(index=False) + "\n")
    parts.append(render_statistics(stats))
    parts.append(render_markdown(tables))
    markdown = "\n".join(p for p in parts if p)
    files = [out_dir / "comparison.md", out_dir / "scores.csv"]
    files[0].write_text(markdown, encoding="utf-8")
    frame.to_csv(files[1], index=False)
    for name, table in stats.items():
        files.append(out_dir / f"{name}.csv")
        table.to_csv(files[-1], index=False)
    if not primary.empty:
        files.append(out_dir / "primary_contrasts.csv")
        primary.to_csv(files[-1], index=False)
        files.append(forest_plot(primary, out_dir / "headline.png"))
    files.append(plot(tables, out_dir / "comparison.png"))
    heat = heatmap(stats, out_dir / "en_vs_target_heatmap.png")
    if heat:
        files.append(heat)
    return markdown, files


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
