"""`ray-xt plan`'s power lines: each target's noise from this study's finished stages, else a named pilot's, else
the stated default, and the detectable difference at the Holm level of each contrast's family."""

import sys
from pathlib import Path

import pytest

from ray_xt.config import parse_study
from ray_xt.contrasts import EN_VS_NONE
from ray_xt.design import power_lines, seed_sds
from ray_xt.stats import detectable_difference

sys.path.insert(0, str(Path(__file__).parent))
from test_report import _phang_study

STUDY = {"name": "p", "data": {"source": "hub"}, "scales": ["xlmr-large"],
         "intermediate": {"tasks": ["mnli", "qqp"], "conditions": ["en", "mlm"],
                          "mlm_corpus": {"dataset": "wikimedia/wikipedia", "config": "20231101.{lang}"}},
         "target": {"tasks": ["pawsx", "xnli"]}, "seeds": [0, 1, 2]}


def test_each_target_gets_its_own_measured_sd():
    """PAWS-X's qqp cell varies with the seed (0.5 points per seed on one of two languages), mnli's does not."""
    sds = seed_sds(_phang_study(), EN_VS_NONE)
    assert sds["pawsx"][1] == 4 and sds["xnli"][1] == 4  # two cells of three seeds each
    assert sds["pawsx"][0] == pytest.approx((0.0625 * 2 / 4) ** 0.5)  # pooled: (0 + var(0, .25, .5) * 2) / 4


def test_the_sd_comes_from_this_study_then_the_pilot_then_the_default():
    cfg = parse_study(STUDY)
    default = "\n".join(power_lines(cfg, []))
    assert "2.17 (power.default_sd: a stated default, not a measurement)" in default
    # 2 contrasts x 2 targets x 2 intermediate tasks at one scale: 8 hypotheses, mnli -> xnli's 2 same-data ones
    assert "Holm families: 6 transfer hypotheses, 2 same-data ones" in default
    pilot = "\n".join(power_lines(cfg, [], _phang_study(), "p_pilot"))
    sd = seed_sds(_phang_study(), EN_VS_NONE)["pawsx"][0]
    assert f"| English intermediate − none | pawsx | transfer (6) | {sd:.2f} (pilot p_pilot, 4 df) | " \
           f"{detectable_difference(sd, 3, 0.05 / 6):.1f} |" in pilot
    own = "\n".join(power_lines(cfg, _phang_study(), _phang_study(seeds=5), "p_pilot"))
    assert f"{sd:.2f} (this study's finished stages, 4 df)" in own


def test_a_missing_pilot_study_is_named(tmp_path, ray_never_started):
    import yaml
    from typer.testing import CliRunner

    from ray_xt.cli import app

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "power": {"pilot": str(tmp_path / "nowhere.yaml")}}))
    result = CliRunner().invoke(app, ["plan", str(study)])
    assert result.exit_code == 2
    assert "power.pilot:" in result.output and "nowhere.yaml: study file not found" in result.output
