"""experiments/phang2020.yaml, field by field, against the protocol as ../shared/PAPER.md states it."""

import os
import re
from pathlib import Path

import pytest

from ray_xt.config import load_study
from ray_xt.tasks.registry import TASKS

ROOT = Path(__file__).resolve().parents[1]
SHARED = os.environ.get("RAY_XT_SHARED_DATA")
PAPER = Path(SHARED).parent / "PAPER.md" if SHARED else None

# (task, epochs, effective batch, micro-batch, max length) from jiant's XTREME scripts as PAPER.md quotes them
TARGET_SETTINGS = {
    "xnli": (2, 32, 4, 256), "pawsx": (5, 32, 4, 256), "udpos": (10, 32, 4, 256), "panx": (10, 32, 4, 256),
    "xquad": (2, 16, 4, 384), "mlqa": (2, 16, 4, 384), "tydiqa": (2, 16, 4, 384),
}
# each fact as PAPER.md words it
PAPER_FACTS = [
    r"epochs\s+XNLI 2, PAWS-X 5, UD-POS 10, PAN-X 10, XQuAD/MLQA/TyDiQA 2",
    r"batch 4 with\s+gradient accumulation 8 \(classification, tagging\) or 4 \(QA\)",
    r"max sequence length 256 \(classification,\s+tagging\), 384 \(QA\), 512 \(BUCC, Tatoeba\)",
    r"`--learning_rate 1e-5`",
    r"Warmup 0\.1",
    r"`retrieval_layer=14`",
]


def test_phang2020_follows_jiants_xtreme_settings():
    cfg = load_study(ROOT / "experiments" / "phang2020.yaml")
    assert cfg.scales == ["xlmr-large"]
    assert cfg.intermediate.multi_task and cfg.intermediate.conditions == ["en", "mlm"]  # the paper's alternatives
    assert cfg.intermediate.mlm_corpus.dataset == "wikimedia/wikipedia"
    assert len(cfg.intermediate.tasks) == 9
    assert set(cfg.target.tasks) == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018",
                                     "tatoeba"}
    for task, (epochs, batch, micro, length) in TARGET_SETTINGS.items():
        t = cfg.trial_for(task)
        assert (t.epochs, t.batch_size, t.batch_size // t.grad_accum, t.max_seq_length) == (epochs, batch, micro,
                                                                                               length), task
    for task in ("bucc2018", "tatoeba"):
        assert cfg.trial_for(task).max_seq_length == 512 and cfg.trial_for(task).retrieval_layer == 14
    assert cfg.search.initial_learning_rate == 1e-5 and cfg.trial.warmup_ratio == 0.1
    assert TASKS["anli"].hub.splits == {"train": "train_r1+train_r2+train_r3", "dev": "dev_r1+dev_r2+dev_r3"}
    text = (ROOT / "experiments" / "phang2020.yaml").read_text()
    assert text.count("[unverified]") >= 5  # seeds, intermediate settings, the ninth task, SQuAD version, MLM text


@pytest.mark.skipif(PAPER is None or not PAPER.is_file(), reason="../shared/PAPER.md not beside the checkout")
def test_the_settings_are_the_ones_paper_md_states():
    text = " ".join(PAPER.read_text(encoding="utf-8").split())
    for fact in PAPER_FACTS:
        assert re.search(fact.replace(r"\s+", " "), text), fact


def test_plan_names_same_data_pairs_and_what_the_seeds_can_detect(ray_never_started):
    from typer.testing import CliRunner

    from ray_xt.cli import app
    from ray_xt.stats import detectable_difference

    result = CliRunner().invoke(app, ["plan", str(ROOT / "experiments" / "scaling_study.yaml")])
    assert result.exit_code == 0, result.output
    assert "xnli <- mnli: same training data (XNLI's English training set is MNLI): not transfer" in result.output
    assert "xquad <- squad: same training data" in result.output and "pawsx <- mnli, squad: transfer pairs" in result.output
    assert "Holm families: 15 transfer hypotheses, 9 same-data ones" in result.output
    # 2 scales: per target 2 scale rows + 1 interaction; transfer: 5 pairs x 3, same data: 3 pairs x 3
    sd = load_study(ROOT / "experiments" / "scaling_study.yaml").power.default_sd
    per_scale = detectable_difference(sd, 3, alpha=0.05 / 15)
    interaction = detectable_difference(sd, 3, alpha=0.05 / 15, design="welch")
    row = (f"| English − target-language (one model per language) | pawsx | transfer (15) | {sd:.2f} (power.default_sd: "
           f"a stated default, not a measurement) | {per_scale:.1f} | {interaction:.1f} |")
    assert row in result.output


def test_plan_of_phang2020_states_its_primary_contrasts(ray_never_started):
    from typer.testing import CliRunner

    from ray_xt.cli import app

    result = CliRunner().invoke(app, ["plan", str(ROOT / "experiments" / "phang2020.yaml")])
    assert result.exit_code == 0, result.output
    assert "  English intermediate − none\n  English + target-language MLM − English\n" in result.output
    # 9 targets x 9 intermediate tasks x 2 contrasts, one scale: 162 hypotheses, 6 of them same-data pairs
    assert "Holm families: 156 transfer hypotheses, 6 same-data ones" in result.output
    assert "| English + target-language MLM − English | tatoeba | transfer (156) |" in result.output
