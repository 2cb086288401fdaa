"""The report's numbers: scores as a frame (one row per stage, language and seed), the comparison and summary
tables, XTREME test scores beside the published ones, and the statistics tables of every contrast."""

from __future__ import annotations

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


def _column(condition: str, intermediate: str, target: str) -> str:
    """A condition's column name; a same-data pair (the intermediate task is the target's training data) carries †."""
    from ray_xt.contrasts import SAME_DATA_MARK
    from ray_xt.tasks.registry import shared_training_data

    if condition == "none":
        return "baseline"
    if condition == "multi-task":
        return "multi-task"
    return f"{intermediate}:{condition}" + (SAME_DATA_MARK if shared_training_data(intermediate, target) else "")


def _with_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(column=[_column(c, i, t) for c, i, t in zip(frame.condition, frame.intermediate, frame.target)])


def comparison_tables(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (scale, target task): languages x conditions (mean over seeds), Δ vs baseline, and an average row."""
    tables = {}
    for (scale, target), part in _with_columns(frame).groupby(["scale", "target"], sort=False):
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


MEAN_OF_TARGETS = "mean of the targets above (not XTREME's score)"


def summary_table(frame: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Target tasks (rows, and their plain mean) x conditions: mean zero-shot score over languages other than
    English and over seeds, on the scored (mostly dev) splits, each task in its own metric (QA: the mean of EM and
    F1); Δ over the baseline; † marks a same-data cell. Not XTREME's score (a test-set mean over all languages,
    English included, QA as F1): the published numbers stand beside our test scores (``published_comparison``)."""
    from ray_xt.contrasts import SAME_DATA_MARK
    from ray_xt.tasks.registry import shared_training_data

    part = frame[(frame.scale == scale) & (frame.language != "en")]
    part = part.assign(column=[_column(c, i, "") for c, i in zip(part.condition, part.intermediate)])
    table = part.pivot_table(index="target", columns="column", values="score", aggfunc="mean")
    ordered = ["baseline"] + sorted(c for c in table.columns if c != "baseline")
    table = table[[c for c in ordered if c in table.columns]]
    table.loc[MEAN_OF_TARGETS] = table.mean()
    if "baseline" in table.columns:
        for col in [c for c in table.columns if c != "baseline"]:
            table[f"Δ {col}"] = table[col] - table["baseline"]
    shown = table.round(1).astype(object)
    for target in table.index:
        for col in table.columns:
            intermediate = col.removeprefix("Δ ").split(":")[0]
            if ":" in col and shared_training_data(intermediate, target) and pd.notna(table.loc[target, col]):
                shown.loc[target, col] = f"{table.loc[target, col]:.1f}{SAME_DATA_MARK}"
    return shown


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


def dev_choice(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per (scale, target): the English intermediate task with the best zero-shot dev average (languages other
    than English, then seeds): the pick X-STILTs makes, made without looking at test scores."""
    dev = frame[(frame.condition == "en") & (frame.language != "en")]
    means = dev.groupby(["scale", "target", "intermediate"])["score"].mean()
    return {(scale, target): str(part.idxmax()[2]) for (scale, target), part in means.groupby(level=[0, 1])}


def published_comparison(records: list[StageRecord], dev: pd.DataFrame | None = None) -> pd.DataFrame:
    """Like for like: our XTREME test scores (published metric, XTREME's language list, mean over seeds) of the
    baseline, of the best English intermediate task per target — chosen on the dev zero-shot average
    (``dev_choice``; † where it is the target's own training data), the single tasks its candidates — and of
    multi-task training, beside the published XLM-R large and X-STILTs test numbers for the scale they describe,
    each marked confirmed or unverified."""
    from ray_xt.contrasts import SAME_DATA_MARK
    from ray_xt.paper import label, paper_baseline, paper_best_intermediate
    from ray_xt.tasks.registry import shared_training_data

    scores = xtreme_test_scores(records)
    if scores.empty:
        return pd.DataFrame()
    chosen = dev_choice(scores_frame(records) if dev is None else dev)
    rows = []
    for (scale, target), part in scores.groupby(["scale", "target"], sort=False):
        coverage = part["languages"].min()
        note = "" if coverage == part["of"].iloc[0] else f" ({coverage} of {part['of'].iloc[0]} languages)"
        base = part[part.condition == "none"]["score"].mean()
        best = chosen.get((scale, target))
        test = part[(part.condition == "en") & (part.intermediate == best)]["score"].mean() if best else np.nan
        mark = SAME_DATA_MARK if best and shared_training_data(best, target) else ""
        multi = part[part.condition == "multi-task"]["score"].mean()
        published, stilts = paper_baseline(scale, target), paper_best_intermediate(scale, target)
        rows.append({"scale": scale, "target": target, "metric": PUBLISHED_METRIC[target] + note,
                     "ours: baseline (test)": None if np.isnan(base) else round(base, 1),
                     "ours: best English intermediate, chosen on dev (test)":
                         f"{test:.1f} ({best}{mark})" if best and not np.isnan(test) else None,
                     "ours: multi-task (test)": None if np.isnan(multi) else round(multi, 1),
                     "published XLM-R large": label(published) if published else "",
                     "published X-STILTs": label(stilts) if stilts else ""})
    return pd.DataFrame(rows)


def _ci_text(mean: float, low: float, high: float) -> str:
    if pd.isna(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def _mark_same_data(table: pd.DataFrame) -> pd.DataFrame:
    from ray_xt.tasks.registry import shared_training_data

    return table.assign(same_data=[shared_training_data(i, t) or "" for i, t in zip(table.intermediate, table.target)])


SECONDARY_GAINS = ("en", "translate-train", "translate-train-each", "mlm", "multi-task")


def statistics(frame: pd.DataFrame, contrasts: list | None = None) -> dict[str, pd.DataFrame]:
    """Per task and language: the primary contrasts (``ray_xt.contrasts.declared``, with their scale interaction
    where the study has several scales: the largest minus the smallest, Welch interval), then the secondary ones —
    the other English − target-language and MLM − English differences, and each condition's gain over no
    intermediate training. t intervals over seeds, p, Holm-adjusted p over each table's language cells;
    same-data pairs marked (``same_data``)."""
    from ray_xt.contrasts import MLM_VS_EN, TARGET_LANGUAGE_CONTRASTS, Contrast, declared, differences
    from ray_xt.stats import difference_table, scale_interaction, with_average_language

    contrasts = declared(set(frame.condition)) if contrasts is None else contrasts
    secondary = [*TARGET_LANGUAGE_CONTRASTS.values(), MLM_VS_EN,
                 *(Contrast(c, "none", f"gain_{c}", f"{c} − none", "") for c in SECONDARY_GAINS)]
    out: dict[str, pd.DataFrame] = {}
    scales = list(dict.fromkeys(frame.scale))
    for contrast in contrasts + [c for c in secondary if c.table not in {p.table for p in contrasts}]:
        diffs = with_average_language(differences(frame, contrast))
        if diffs.empty:
            continue
        out[contrast.table] = _mark_same_data(difference_table(diffs))
        if contrast in contrasts and len(scales) > 1:
            out[contrast.interaction_table] = _mark_same_data(scale_interaction(diffs, scales[0], scales[-1]))
    return out


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
        "gain_multi-task": "Gain of multi-task intermediate training (all intermediate tasks, English) over none",
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


def render_markdown(tables: dict[tuple[str, str], pd.DataFrame]) -> str:
    parts = []
    for (scale, target), table in tables.items():
        parts.append(f"### {target} on {scale} (zero-shot dev score, mean over seeds)\n")
        parts.append(table.to_markdown() + "\n")
    return "\n".join(parts)


