"""The per-scale comparison table, from hand-made stage records."""

import re

import numpy as np
import pandas as pd
import pytest

from ray_xt.report import comparison_tables, scores_frame, write_report


def record(scale, condition, inter, scores, seed=0):
    return {"stage": {"scale": scale, "task": "pawsx", "seed": str(seed), "condition": condition,
                      "intermediate_task": inter}, "zero_shot": scores}


RECORDS = [
    record("micro-s", "none", "none", {"en": 0.80, "qca": 0.60, "qso": 0.50}),
    record("micro-s", "none", "none", {"en": 0.70, "qca": 0.70, "qso": 0.50}, seed=1),
    record("micro-s", "en", "mnli", {"en": 0.90, "qca": 0.70, "qso": 0.55}),
    record("micro-s", "translate-train", "mnli", {"en": 0.85, "qca": 0.75, "qso": 0.65}),
    {"stage": {"scale": "micro-s", "task": "mnli"}, "sweep": {}},  # intermediate stages have no zero-shot scores
]


def test_table_means_over_seeds_and_deltas():
    tables = comparison_tables(scores_frame(RECORDS))
    table = tables[("micro-s", "pawsx")]
    assert list(table.columns) == ["baseline", "mnli:en", "mnli:translate-train", "Δ mnli:en", "Δ mnli:translate-train"]
    assert list(table.index) == ["en", "qca", "qso", "avg (zero-shot)"]
    assert table.loc["en", "baseline"] == pytest.approx(75.0)  # mean of 80 and 70
    assert table.loc["qca", "Δ mnli:translate-train"] == pytest.approx(10.0)
    # the zero-shot average excludes English: baseline (65+50)/2, en-intermediate (70+55)/2
    assert table.loc["avg (zero-shot)", "Δ mnli:en"] == pytest.approx(62.5 - 57.5)


def test_write_report_files(tmp_path):
    markdown, files = write_report(RECORDS, tmp_path)
    assert "pawsx on micro-s" in markdown and "| qso" in markdown
    assert {f.name for f in files} == {"comparison.md", "scores.csv", "comparison.png", "en_minus_translate_train.csv",
                                       "gain_en.csv", "gain_translate-train.csv", "en_vs_target_heatmap.png",
                                       "primary_contrasts.csv", "headline.png"}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 12


def test_no_targets_yet(tmp_path):
    markdown, files = write_report(RECORDS[-1:], tmp_path)
    assert files == [] and "no finished target stages" in markdown


def test_the_report_opens_with_the_primary_contrasts_and_keeps_same_data_pairs_apart(tmp_path):
    """MNLI -> XNLI is the same data twice (XNLI trains on MNLI): shown apart from the transfer pair MNLI -> PAWS-X."""
    from ray_xt.contrasts import declared
    from ray_xt.headline import primary_table
    from ray_xt.report import headline_of, statistics

    xnli = [{**r, "stage": {**r["stage"], "task": "xnli"}} for r in _study()]
    markdown, files = write_report(_study() + xnli, tmp_path)
    assert markdown.startswith("## Headline: English − target-language intermediate training")
    transfer = markdown.index("### Transfer pairs")
    same = markdown.index("### Same-data pairs, not transfer † (mnli → xnli: XNLI's English training set is MNLI)")
    details = markdown.index("## Details")
    assert transfer < same < details
    assert "pawsx" in markdown[transfer:same] and "xnli" not in markdown[transfer:same]
    frame = scores_frame(_study() + xnli)
    primary = primary_table(statistics(frame), declared(set(frame.condition)))
    assert set(primary.scale) == {"micro-s", "micro-m", "micro-m − micro-s"}
    assert (primary.seeds == 3).all()
    assert primary[primary.target == "pawsx"].same_data.eq("").all()
    note = headline_of(markdown)
    assert note.startswith("## Headline") and "## Details" not in note and len(note) < 8000
    assert (tmp_path / "headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _study(seeds=3):
    """Two scales, three seeds; English beats translate-train by 2 points at micro-s and by 5 at micro-m on qso,
    with seed-dependent noise that cancels in the paired difference."""
    records = []
    for scale, gap in (("micro-s", 2.0), ("micro-m", 5.0)):
        for seed in range(seeds):
            noise = [0.0, 1.0, -1.0][seed]
            base = {"en": 0.80 + noise / 100, "qso": 0.50 + noise / 100}
            records.append(record(scale, "none", "none", base, seed))
            records.append(record(scale, "translate-train", "mnli",
                                  {k: v + 0.01 for k, v in base.items()}, seed))
            records.append(record(scale, "en", "mnli", {k: v + 0.01 + gap / 100 * (k == "qso") for k, v in base.items()},
                                  seed))
    return records


def test_statistics_on_a_hand_computed_study():
    from ray_xt.report import statistics

    stats = statistics(scores_frame(_study()))
    diff = stats["en_minus_translate_train"].set_index(["scale", "language"])
    assert diff.loc[("micro-s", "qso"), "mean"] == pytest.approx(2.0)
    assert diff.loc[("micro-m", "qso"), "mean"] == pytest.approx(5.0)
    assert diff.loc[("micro-m", "en"), "mean"] == pytest.approx(0.0)
    # paired by seed, the noise cancels: a degenerate interval at the difference
    assert diff.loc[("micro-s", "qso"), ["ci_low", "ci_high"]].tolist() == pytest.approx([2.0, 2.0])
    assert diff.loc[("micro-s", "avg (zero-shot)"), "mean"] == pytest.approx(2.0)  # qso is the only zero-shot language
    interaction = stats["scale_interaction_translate_train"].set_index("language")
    assert interaction.loc["qso", "interaction"] == pytest.approx(3.0)  # 5 at micro-m minus 2 at micro-s
    assert interaction.loc["qso", ["ci_low", "ci_high"]].tolist() == pytest.approx([3.0, 3.0])
    gain = stats["gain_en"].set_index(["scale", "language"])
    assert gain.loc[("micro-m", "qso"), "mean"] == pytest.approx(6.0)  # +1 shared, +5 English-only


def test_report_shows_summary_statistics_and_paper_numbers(tmp_path):
    """Published numbers are test-set numbers: they stand beside our test-set scores in the published metric over
    XTREME's languages, never beside dev averages; unverified ones are marked."""
    from ray_xt.report import published_comparison, summary_table
    from ray_xt.tasks.registry import TASKS

    markdown, _ = write_report(_study(), tmp_path)
    assert "English minus target-language intermediate training" in markdown
    assert "Scale interaction: (English − target-language) at micro-m minus at micro-s" in markdown
    assert "+3.0 [+3.0, +3.0]" in markdown
    frame = scores_frame(_study()).assign(scale="xlmr-large")
    table = summary_table(frame, "xlmr-large")
    assert "paper baseline" not in table.columns  # dev scores only
    assert "mean of the targets above (not XTREME's score)" in table.index and "XTREME avg" not in table.index
    pawsx = TASKS["pawsx"].languages
    # on test mnli is best; on the dev zero-shot average qqp is: the pick is qqp, made without test scores
    dev_scores = {"mnli": 0.70, "qqp": 0.75, "none": 0.60}
    records = [{"stage": {"scale": "xlmr-large", "task": task, "seed": str(seed), "condition": condition,
                          "intermediate_task": inter},
                "zero_shot": {"en": 0.9, "de": dev_scores[inter] + seed / 100, "fr": dev_scores[inter]},
                "test_metrics": {lang: {"accuracy": acc + seed, "f1": acc} for lang in pawsx}}
               for seed in (0, 1) for task, acc in (("pawsx", 80.0), ("udpos", 60.0))
               for condition, inter, acc in (("none", "none", acc), ("en", "mnli", acc + 2), ("en", "qqp", acc + 1))]
    published = published_comparison(records).set_index("target")
    assert published.loc["pawsx", "ours: baseline (test)"] == 80.5  # mean over seeds 0 and 1
    assert published.loc["pawsx", "ours: best English intermediate, chosen on dev (test)"] == "81.5 (qqp)"
    assert published.loc["pawsx", "published XLM-R large"] == "86.4 (test)"  # confirmed
    assert published.loc["pawsx", "published X-STILTs"] == "87.7 (test)"
    assert published.loc["udpos", "published XLM-R large"] == "72.6 (test, unverified)"
    assert published.loc["udpos", "metric"] == "f1 (7 of 33 languages)"  # partial coverage is said
    xnli = [{**r, "stage": {**r["stage"], "task": "xnli", "intermediate_task": "mnli"}}
            for r in records if r["stage"]["intermediate_task"] == "mnli" and r["stage"]["task"] == "pawsx"]
    same = published_comparison(xnli).set_index("target")
    assert same.loc["xnli", "ours: best English intermediate, chosen on dev (test)"] == "82.5 (mnli†)"


def test_retrieval_tasks_without_english_rows_are_reported(tmp_path):
    retrieval = [{"stage": {"scale": "micro-s", "task": "tatoeba", "seed": "0", "condition": c,
                            "intermediate_task": i}, "zero_shot": {"qca": 0.9, "qso": 0.4}}
                 for c, i in (("none", "none"), ("en", "mnli"))]
    markdown, _ = write_report(RECORDS + retrieval, tmp_path)
    assert "tatoeba on micro-s" in markdown and "pawsx on micro-s" in markdown


def _phang_study(seeds=3, collapse=None):
    """phang2020's design on one scale: none, en and mlm for mnli and qqp; PAWS-X (transfer) and XNLI (same data
    for mnli). English helps PAWS-X by 4 points, MLM adds nothing; ``collapse`` = (seed, condition, intermediate)
    whose PAWS-X English dev is at chance."""
    records = []
    for target in ("pawsx", "xnli"):
        for seed in range(seeds):
            noise = [0.0, 1.0, -1.0, 0.5, -0.5][seed] / 100
            for condition, inter, gain in (("none", "none", 0.0), ("en", "mnli", 0.04), ("en", "qqp", 0.04),
                                           ("mlm", "mnli", 0.04), ("mlm", "qqp", 0.04)):
                scores = {"en": 0.85 + noise, "de": 0.60 + gain + noise + 0.005 * seed * (inter == "qqp"),
                          "fr": 0.62 + gain + noise}
                if target == "pawsx" and collapse == (seed, condition, inter):
                    scores = {"en": 0.51, "de": 0.50, "fr": 0.50}
                records.append({"stage": {"scale": "xlmr-large", "task": target, "seed": str(seed),
                                          "condition": condition, "intermediate_task": inter}, "zero_shot": scores})
    return records


def test_phang2020_gets_its_own_primary_contrasts_headline_and_figure(tmp_path):
    """English intermediate − none and MLM − English per (target, intermediate): the paper's question, with
    same-data pairs (mnli → xnli) in a family of their own."""
    markdown, files = write_report(_phang_study(), tmp_path)
    assert markdown.startswith("## Headline: English intermediate training against none; target-language MLM "
                               "added to English intermediate training, averaged over the zero-shot languages")
    primary = pd.read_csv(tmp_path / "primary_contrasts.csv", keep_default_na=False)
    assert set(primary.contrast) == {"English intermediate − none", "English + target-language MLM − English"}
    gains = primary[(primary.contrast == "English intermediate − none") & (primary.target == "pawsx")]
    assert gains["mean"].astype(float).tolist() == pytest.approx([4.0, 4.25])  # mnli, qqp (its seeds vary)
    assert set(primary[primary.same_data != ""].intermediate) == {"mnli"}
    assert set(primary[primary.same_data != ""].target) == {"xnli"}
    assert (primary.family == "same data").sum() == 2 and (primary.family == "transfer").sum() == 6
    assert {f.name for f in files} >= {"headline.png", "gain_en_heatmap.png", "mlm_minus_en.csv"}


def test_simultaneous_intervals_agree_with_holm():
    """Where the figure's interval excludes zero, Holm rejects: never an interval that contradicts the decision."""
    from ray_xt.contrasts import declared
    from ray_xt.headline import primary_table
    from ray_xt.report import statistics

    for seeds in (3, 5):
        frame = scores_frame(_phang_study(seeds))
        primary = primary_table(statistics(frame), declared(set(frame.condition)))
        excluded = (primary.sim_low > 0) | (primary.sim_high < 0)
        assert (primary.p_holm[excluded] < 0.05).all()
        assert ((primary.sim_high - primary.sim_low) >= (primary.ci_high - primary.ci_low) - 1e-9).all()


def test_simultaneous_intervals_cover_the_whole_family():
    """Six contrasts, three seeds, true differences known: all six intervals cover at once in >= 93% of studies."""
    from ray_xt.headline import _simultaneous
    from ray_xt.stats import t_interval

    rng = np.random.default_rng(3)
    truth = np.array([0.0, 0.0, 1.0, 2.0, -1.0, 4.0])
    studies, covered = 2000, 0
    for _ in range(studies):
        cis = [t_interval(rng.normal(mu, 1.5, size=3)) for mu in truth]
        rows = pd.DataFrame({"mean": [c.mean for c in cis], "ci_low": [c.low for c in cis],
                             "ci_high": [c.high for c in cis], "df": [c.df for c in cis]})
        sim = _simultaneous(rows, len(rows), 0.95)
        covered += bool(((sim[:, 0] <= truth) & (truth <= sim[:, 1])).all())
    assert covered / studies >= 0.93


def test_a_collapsed_seed_is_named_before_the_headline_and_left_out(tmp_path):
    markdown, _ = write_report(_phang_study(collapse=(1, "en", "qqp")), tmp_path)
    flagged = markdown.index("### Collapsed seeds, left out of the contrasts they enter")
    assert flagged < markdown.index("### Transfer pairs")
    assert re.search(r"\| xlmr-large \| pawsx +\| +1 \| en +\| qqp +\| +51 \| +55 \|", markdown)
    primary = pd.read_csv(tmp_path / "primary_contrasts.csv", keep_default_na=False)
    row = primary[(primary.contrast == "English intermediate − none") & (primary.target == "pawsx")
                  & (primary.intermediate == "qqp")]
    assert row.seeds.tolist() == [2]  # the collapsed seed's pair is out; the other seeds stay
    other = primary[(primary.contrast == "English intermediate − none") & (primary.target == "pawsx")
                    & (primary.intermediate == "mnli")]
    assert other.seeds.tolist() == [3]
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores.collapsed.sum() == 3  # every language of that stage, kept and marked


def test_every_study_with_an_intermediate_condition_declares_primary_contrasts():
    from ray_xt.contrasts import declared

    assert [c.table for c in declared({"none", "en", "translate-train", "translate-train-each"})] == \
        ["en_minus_translate_train", "en_minus_translate_train_each"]
    assert [c.table for c in declared({"none", "en", "mlm", "multi-task"})] == ["gain_en", "mlm_minus_en"]
    assert [c.table for c in declared({"none", "multi-task"})] == ["gain_multi-task"]
    assert declared({"none"}) == []


def test_a_study_whose_every_stage_collapsed_still_gets_its_report(tmp_path):
    """cluster_smoke's one tiny stage per condition learns nothing (English dev 4 F1): named, nothing compared."""
    records = [{"stage": {"scale": "micro-s", "task": "udpos", "seed": "0", "condition": c, "intermediate_task": i},
                "zero_shot": {"en": 0.042, "qca": 0.014, "qso": 0.012}} for c, i in (("none", "none"), ("en", "mnli"))]
    markdown, files = write_report(records, tmp_path)
    assert markdown.startswith("### Collapsed seeds, left out of the contrasts they enter")
    assert "every stage collapsed: nothing to compare" in markdown
    assert {f.name for f in files} == {"comparison.md", "scores.csv"}
