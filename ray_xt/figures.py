"""The report's figures (the headline's forest plot is ``ray_xt.headline``'s): one non-interactive backend (reports
are written on headless drivers), one way to save, the grid of bars and the per-language heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported when a figure is drawn (not with the report module)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def heatmap(stats: dict[str, pd.DataFrame], contrast, path: Path) -> Path | None:
    """The first primary contrast per language (rows) and scale/task (columns), each cell with its interval; a
    frame around cells whose Holm-adjusted p (over the table's language cells) is below 0.05; † a same-data pair."""
    from ray_xt.contrasts import SAME_DATA_MARK

    table = stats.get(contrast.table)
    if table is None or table.empty:
        return None
    plt = pyplot()
    table = table.assign(intermediate=[i + (SAME_DATA_MARK if same else "")
                                       for i, same in zip(table.intermediate, table.same_data)])
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
    fig.colorbar(image, ax=ax, label=f"{contrast.title} (points)")
    ax.set_title(f"{contrast.title} per language (95% t intervals; framed: Holm p < 0.05)", fontsize=9)
    return save_figure(fig, path)


def plot(tables: dict[tuple[str, str], pd.DataFrame], path: Path) -> Path:
    plt = pyplot()
    cols = min(3, len(tables))  # a grid read on a screen, not one strip of panels
    rows = -(-len(tables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(tables):]:
        ax.set_visible(False)
    for ax, ((scale, target), table) in zip(axes.flat, tables.items()):
        shown = [c for c in table.columns if not c.startswith("Δ")]
        table[shown].plot.bar(ax=ax, rot=45)
        ax.set_title(f"{target} — {scale}")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    return save_figure(fig, path)
