"""Published numbers a study is compared with, each with its source and whether it is confirmed.

Confirmed (../shared/PAPER.md): the XTREME **test** scores of XLM-R large and of X-STILTs (Phang et al. 2020's
best intermediate task per target) for XNLI, PAWS-X, PAN-X and the three QA tasks, as listed in
google-research/multilingual-t5's README (QA columns there are F1). Unverified (from memory in PAPER.md, not
found in a stored source): XLM-R large's UD-POS, BUCC, Tatoeba and XTREME average, and the paper's average
improvements per intermediate task (dev-set averages at best). The report shows unverified numbers marked so,
and compares only like with like: test-set scores with test-set numbers, in the published metric.
"""

from __future__ import annotations

from dataclasses import dataclass

MT5_README = "google-research/multilingual-t5 README (XTREME test results table)"
FROM_MEMORY = "../shared/PAPER.md, from memory (unverified)"


@dataclass(frozen=True)
class Published:
    value: float
    split: str  # test | dev
    metric: str  # accuracy | f1 | em_f1 (QA: (EM + F1) / 2)
    source: str
    confirmed: bool


def _test(value: float, metric: str, confirmed: bool = True) -> Published:
    return Published(value, "test", metric, MT5_README if confirmed else FROM_MEMORY, confirmed)


# XTREME test scores, XLM-R large (the XTREME paper's baseline row)
XLMR_LARGE: dict[str, Published] = {
    "xnli": _test(79.2, "accuracy"), "pawsx": _test(86.4, "accuracy"), "panx": _test(65.4, "f1"),
    "xquad": _test(76.6, "f1"), "mlqa": _test(71.6, "f1"), "tydiqa": _test(65.1, "f1"),
    "udpos": _test(72.6, "f1", confirmed=False), "bucc2018": _test(66.0, "f1", confirmed=False),
    "tatoeba": _test(57.3, "accuracy", confirmed=False),
}
# X-STILTs: XLM-R large after the best intermediate task per target (Phang et al. 2020), XTREME test scores
X_STILTS: dict[str, Published] = {
    "xnli": _test(80.4, "accuracy"), "pawsx": _test(87.7, "accuracy"), "panx": _test(64.7, "f1"),
    "xquad": _test(77.2, "f1"), "mlqa": _test(72.3, "f1"), "tydiqa": _test(76.0, "f1"),
}
# which of our scales the paper's numbers describe
PAPER_SCALE = "xlmr-large"


def paper_baseline(scale: str, target: str) -> Published | None:
    return XLMR_LARGE.get(target) if scale == PAPER_SCALE else None


def paper_best_intermediate(scale: str, target: str) -> Published | None:
    return X_STILTS.get(target) if scale == PAPER_SCALE else None


def label(published: Published) -> str:
    """How a published number is shown: its value, split and whether it is confirmed."""
    return f"{published.value:.1f} ({published.split}{'' if published.confirmed else ', unverified'})"
