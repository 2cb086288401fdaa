"""The report's headline: the study's primary contrasts (``ray_xt.contrasts``) as a table and a forest plot.

Each row is a contrast for one (target, intermediate task), averaged over the zero-shot languages, at one scale
or as the scale interaction. It carries the t interval over seeds (for these languages), the interval for a
sample of languages (``stats.language_sample_interval``), p, Holm's adjusted p over its family, and a
simultaneous interval (Bonferroni over the family): where that one excludes zero Holm rejects too, so the
figure's intervals never contradict the decision it marks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ray_xt.contrasts import SAME_DATA, SAME_DATA_MARK, TRANSFER, Contrast, headline_question, interaction_label
from ray_xt.stats import LEVEL, ZERO_SHOT_AVERAGE, holm

ASYMMETRY_NOTE = (
    "Which pair is compared: `en` is one model for all languages. `translate-train` is also one model, trained on a "
    "size-matched mixture of the target languages: the difference is the language of the data. "
    "`translate-train-each` is one model per language, each specialised to it: the difference mixes the data's "
    "language with that specialisation. Where a study has both, both are shown against `en`.")


def primary_table(stats: dict[str, pd.DataFrame], contrasts: list[Contrast], level: float = LEVEL) -> pd.DataFrame:
    """One row per primary hypothesis that has data, ordered by contrast, target, intermediate and scale (small to
    large, the interaction last), with Holm's adjusted p and the simultaneous interval per family."""
    rows = []
    for contrast in contrasts:
        diff = stats.get(contrast.table)
        if diff is not None:
            for r in diff[diff.language == ZERO_SHOT_AVERAGE].itertuples():
                rows.append({"contrast": contrast.title, "target": r.target, "intermediate": r.intermediate,
                             "scale": r.scale, "mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high,
                             "lang_low": r.lang_low, "lang_high": r.lang_high, "seeds": r.seeds, "df": r.df,
                             "p": r.p, "same_data": r.same_data})
        inter = stats.get(contrast.interaction_table)
        if inter is not None:
            for r in inter[inter.language == ZERO_SHOT_AVERAGE].itertuples():
                rows.append({"contrast": contrast.title, "target": r.target, "intermediate": r.intermediate,
                             "scale": interaction_label(r.small, r.large), "mean": r.interaction, "ci_low": r.ci_low,
                             "ci_high": r.ci_high, "lang_low": np.nan, "lang_high": np.nan, "seeds": r.seeds,
                             "df": r.df, "p": r.p, "same_data": r.same_data})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    from ray_xt.scales import SCALES

    ladder = {name: i for i, name in enumerate(SCALES)}  # small to large, the interaction after them
    titles = {c.title: i for i, c in enumerate(contrasts)}
    table = table.assign(_c=[titles[c] for c in table.contrast], _s=[ladder.get(s, len(ladder)) for s in table.scale])
    table = table.sort_values(["_c", "target", "intermediate", "_s"], kind="stable").drop(columns=["_c", "_s"])
    table = table.reset_index(drop=True)
    table["family"] = np.where(table.same_data == "", TRANSFER, SAME_DATA)
    table["p_holm"], table["sim_low"], table["sim_high"] = np.nan, np.nan, np.nan
    for family in (TRANSFER, SAME_DATA):
        rows_of = table.family == family
        table.loc[rows_of, "p_holm"] = holm(table.loc[rows_of, "p"].to_numpy())
        tested = int(table.loc[rows_of, "p"].notna().sum())
        if tested:
            table.loc[rows_of, ["sim_low", "sim_high"]] = _simultaneous(table[rows_of], tested, level)
    return table


def _simultaneous(rows: pd.DataFrame, tested: int, level: float) -> np.ndarray:
    """Each row's interval at level 1 − (1 − level)/m (Bonferroni over the family's m tested rows): together they
    cover every true difference of the family with probability at least ``level``."""
    alpha = (1 - level) / tested
    out = np.full((len(rows), 2), np.nan)
    for i, r in enumerate(rows.itertuples()):
        if pd.isna(r.ci_low) or pd.isna(r.df):
            continue
        widen = scipy_stats.t.ppf(1 - alpha / 2, r.df) / scipy_stats.t.ppf(0.5 + level / 2, r.df)
        out[i] = [r.mean - (r.mean - r.ci_low) * widen, r.mean + (r.ci_high - r.mean) * widen]
    return out


def _ci_text(mean: float, low: float, high: float) -> str:
    if pd.isna(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def _p_text(p: float) -> str:
    return "–" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def render_headline(primary: pd.DataFrame, contrasts: list[Contrast], collapsed_note: str = "") -> str:
    """The answer at a glance: transfer pairs first, same-data pairs apart; collapsed seeds named before it."""
    if primary.empty:
        return ""
    note = ASYMMETRY_NOTE if any(c.second.startswith("translate-train") for c in contrasts) else ""
    interactions = primary.scale.str.contains(" − ").any()
    parts = [f"## Headline: {headline_question(contrasts)}, averaged over the zero-shot languages\n",
             "Points; per seed, the difference averaged over the target's zero-shot languages, then the mean over "
             "seeds [95% t interval, df = seeds − 1: for these languages]; `languages as a sample`: the interval "
             "that also counts the languages' own spread; `simultaneous`: 95% for the whole family at once "
             "(Bonferroni; where it excludes 0, Holm does too). "
             + ("A scale row `large − small` is the scale interaction (Welch interval over the two scales' seeds). "
                if interactions else "")
             + "p: two-sided; Holm: adjusted over the family (transfer pairs; same-data pairs apart). "
             + note + "\n", collapsed_note]

    def table(rows: pd.DataFrame) -> str:
        shown = rows.assign(
            difference=[_ci_text(m, lo, hi) for m, lo, hi in zip(rows["mean"], rows.ci_low, rows.ci_high)],
            **{"languages as a sample": ["" if pd.isna(lo) else f"[{lo:+.1f}, {hi:+.1f}]"
                                         for lo, hi in zip(rows.lang_low, rows.lang_high)],
               "simultaneous": ["" if pd.isna(lo) else f"[{lo:+.1f}, {hi:+.1f}]"
                                for lo, hi in zip(rows.sim_low, rows.sim_high)]},
            p=[_p_text(p) for p in rows.p], Holm=[_p_text(p) for p in rows.p_holm])
        columns = ["contrast", "target", "intermediate", "scale", "difference", "languages as a sample",
                   "simultaneous", "seeds", "p", "Holm"]
        return shown[columns].to_markdown(index=False) + "\n"

    transfer, same = primary[primary.family == TRANSFER], primary[primary.family == SAME_DATA]
    if not transfer.empty:
        parts += ["### Transfer pairs (the intermediate task is not the target's training data)\n", table(transfer)]
    if not same.empty:
        reasons = "; ".join(sorted(set(f"{i} → {t}: {why}" for i, t, why in zip(same.intermediate, same.target,
                                                                                  same.same_data))))
        parts += [f"### Same-data pairs, not transfer {SAME_DATA_MARK} ({reasons})\n", table(same)]
    return "\n".join(p for p in parts if p)


def forest_plot(primary: pd.DataFrame, contrasts: list[Contrast], path: Path) -> Path | None:
    """The headline figure: one row per (target, intermediate, contrast), a point and its simultaneous interval
    per scale and for the scale interaction, filled where Holm rejects; same-data pairs in a panel of their own."""
    if primary.empty:
        return None
    from ray_xt.figures import pyplot, save_figure

    plt = pyplot()

    groups = [("transfer pairs", primary[primary.family == TRANSFER]),
              (f"same-data pairs {SAME_DATA_MARK} (not transfer)", primary[primary.family == SAME_DATA])]
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
                err = None if pd.isna(r.sim_low) else [[r.mean - r.sim_low], [r.sim_high - r.mean]]
                rejected = bool(r.p_holm < 0.05)
                ax.errorbar(r.mean, y, xerr=err, fmt="D" if " − " in r.scale else "o", color=colours[r.scale],
                            markerfacecolor=colours[r.scale] if rejected else "white", capsize=3, label=r.scale)
        ax.axvline(0, color="grey", lw=0.8)
        mark = SAME_DATA_MARK if title.startswith("same") else ""
        ax.set_yticks(range(len(keys)), [f"{t} ← {i}{mark}\n{c}" for t, i, c in keys], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("difference (points; simultaneous 95% intervals over each family; filled: Holm-adjusted "
                           "p < 0.05)", fontsize=8)
    fig.suptitle(headline_question(contrasts)[:1].upper() + headline_question(contrasts)[1:], fontsize=10)
    return save_figure(fig, path)
