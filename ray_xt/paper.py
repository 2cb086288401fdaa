"""Numbers the paper (and XTREME) report, shown beside ours where a study can be compared.

Sources: ``../shared/PAPER.md`` (seed summary of Phang et al. 2020 and the XTREME paper's XLM-R large test
scores). They carry the same caveats as there: unverified items are marked in PAPER.md.
"""

from __future__ import annotations

# XTREME paper, XLM-R large, test sets (QA: F1)
XLMR_LARGE_BASELINE: dict[str, float] = {
    "xnli": 79.2, "pawsx": 86.4, "udpos": 72.6, "panx": 65.4, "xquad": 76.6, "mlqa": 71.6, "tydiqa": 65.1,
    "bucc2018": 66.0, "tatoeba": 57.3,
}
XLMR_LARGE_XTREME_AVERAGE = 68.2
# Phang et al. 2020: average target-task improvement of the best single intermediate tasks (English)
AVERAGE_IMPROVEMENT: dict[str, float] = {"squad": 8.2, "mnli": 7.5, "hellaswag": 7.0}

# which of our scales the paper's numbers describe
PAPER_SCALE = "xlmr-large"


def paper_baseline(scale: str, target: str) -> float | None:
    return XLMR_LARGE_BASELINE.get(target) if scale == PAPER_SCALE else None


def paper_improvement(scale: str, intermediate: str) -> float | None:
    return AVERAGE_IMPROVEMENT.get(intermediate) if scale == PAPER_SCALE else None
