"""The validity check's verdict, on hand-made stage records with hand-computed z scores."""

import math

import pytest

from ray_xt.validity import language_verdicts, scale_averages, validity_table, validity_verdict


def record(scale, task, scores, seed=0):
    return {"stage": {"scale": scale, "task": task, "seed": str(seed), "condition": "none",
                      "intermediate_task": "none"}, "zero_shot": scores}


def records(micro_m_qso=0.30):
    return [
        record("micro-s", "xnli", {"en": 0.60, "qca": 0.45, "qso": 0.36}),
        record("micro-m", "xnli", {"en": 0.70, "qca": 0.50, "qso": micro_m_qso}),
        record("micro-l", "xnli", {"en": 0.80, "qca": 0.60, "qso": 0.38}, seed=0),
        record("micro-l", "xnli", {"en": 0.82, "qca": 0.64, "qso": 0.40}, seed=1),
        record("micro-s", "udpos", {"en": 0.90, "qca": 0.50, "qso": 0.20}),
        record("micro-m", "udpos", {"en": 0.90, "qca": 0.60, "qso": 0.30}),
        record("micro-l", "udpos", {"en": 0.95, "qca": 0.70, "qso": 0.40}),
    ]


SCALES = ["micro-s", "micro-m", "micro-l"]
CHANCE = {"xnli": 1 / 3, "udpos": 0.0}
COUNTS = {("xnli", "qca"): 300, ("xnli", "qso"): 300, ("udpos", "qca"): None, ("udpos", "qso"): None}


def test_each_language_at_the_largest_scale_is_tested_against_the_binomial_at_chance():
    table = validity_table(records(), CHANCE, SCALES)
    verdicts = {(v.task, v.language): v for v in language_verdicts(table, "micro-l", COUNTS)}
    assert set(verdicts) == set(COUNTS)  # English and the average row are not judged
    qso = verdicts[("xnli", "qso")]
    assert qso.score == pytest.approx(39.0)  # the mean of the two seeds
    se = 100 * math.sqrt(0.333 * 0.667 / 300)  # chance as the table rounds it, 33.3%
    assert qso.z == pytest.approx((39.0 - 33.3) / se)  # 2.09
    assert qso.level == "above chance"
    assert verdicts[("xnli", "qca")].level == "well above chance"  # 62.0: z 10.5
    assert verdicts[("udpos", "qso")].z is None and verdicts[("udpos", "qso")].level == "F1 margin, not tested"


def test_the_verdict_names_what_falls_short_and_judges_the_scale_trend():
    table = validity_table(records(), CHANCE, SCALES)
    # mean over the tasks of each scale's zero-shot average: (40.5 + 35) / 2, (40 + 45) / 2, (50.5 + 55) / 2
    assert scale_averages(table, SCALES) == pytest.approx({"micro-s": 37.75, "micro-m": 42.5, "micro-l": 52.75})
    text = validity_verdict(table, SCALES, COUNTS)
    assert "Verdict at micro-l" in text
    assert "well above chance at micro-l (xnli): **not met** — xnli qso +5.7 (z 2.1, above chance)." in text
    assert "micro-s 37.8 -> micro-m 42.5 -> micro-l 52.8: **met**" in text
    assert "| xnli | qca | 62.0 | 33.3 | +28.7 | 10.5 (n=300) | well above chance |" in text


def test_a_scale_that_transfers_less_than_the_one_below_fails_the_trend():
    table = validity_table(records(micro_m_qso=0.10), CHANCE, SCALES)  # micro-m's xnli average drops to 30
    assert scale_averages(table, SCALES)["micro-m"] < scale_averages(table, SCALES)["micro-s"]
    assert "**not met**." in validity_verdict(table, SCALES, COUNTS).splitlines()[-1]


def test_every_language_well_above_chance_meets_the_first_target():
    strong = [record(s, "xnli", {"en": 0.9, "qca": 0.5 + i / 10, "qso": 0.5 + i / 10}) for i, s in enumerate(SCALES)]
    text = validity_verdict(validity_table(strong, {"xnli": 1 / 3}, SCALES), SCALES, COUNTS)
    assert "well above chance at micro-l (xnli): **met**." in text
    assert text.splitlines()[-1].endswith("**met**.")
