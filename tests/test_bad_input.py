"""Bad input a tired researcher gives: every case exits 2 before Ray starts, with one message that names the file
and the field or value and what would be valid - never a traceback, nothing already computed touched."""

import copy
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ray_xt.cli import app
from ray_xt.config import ConfigError, parse_study

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "experiments").glob("*.yaml"))


def demo(tmp_path: Path) -> dict:
    study = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text())
    study["storage"] = str(tmp_path / "results")
    study["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    study["micro"]["cache_dir"] = str(tmp_path / "cache")
    return study


def refused(tmp_path: Path, study, *options: str, command: str = "run", raw: bytes | None = None):
    path = tmp_path / "study.yaml"
    path.write_bytes(raw if raw is not None else yaml.safe_dump(study).encode())
    result = CliRunner().invoke(app, [command, str(path), *options])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def change(path: str, value):
    def apply(study: dict) -> dict:
        *parents, leaf = path.split(".")
        node = study
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
        return study
    return apply


STUDY_CASES = [
    ("duplicate scale", change("scales", ["micro-s", "micro-s"]), ["scales", "given more than once"]),
    ("duplicate seed", change("seeds", [0, 0]), ["seeds", "given more than once"]),
    ("duplicate intermediate task", change("intermediate.tasks", ["mnli", "mnli"]), ["intermediate.tasks"]),
    ("duplicate target task", change("target.tasks", ["udpos", "udpos"]), ["target.tasks"]),
    ("duplicate target language", change("target.languages", ["en", "qca", "qca"]), ["target.languages"]),
    ("inf epochs", change("trial.epochs", math.inf), ["trial.epochs", "not a finite number"]),
    ("nan learning rate", change("search.learning_rate.low", math.nan), ["search.learning_rate.low", "not a finite"]),
    ("inf reduction factor", change("scheduler.reduction_factor", math.inf), ["scheduler.reduction_factor", "finite"]),
    ("nan warmup", change("trial.warmup_ratio", math.nan), ["trial.warmup_ratio", "not a finite number"]),
    ("inf weight decay", change("trial.weight_decay", math.inf), ["trial.weight_decay", "not a finite number"]),
    ("boolean epochs", change("trial.epochs", True), ["trial.epochs", "true is not a number"]),
    ("huge epochs", change("trial.epochs", 1e12), ["trial.epochs", "less than or equal to 1000"]),
    ("huge num_samples", change("search.num_samples", 10**12), ["search.num_samples", "10000"]),
    ("name ..", change("name", ".."), ["name", "outside the study's own"]),
    ("name .", change("name", "."), ["name", "outside the study's own"]),
    ("retrieval layer too deep", change("trial.retrieval_layer", 9), ["trial.retrieval_layer", "deeper", "micro-s"]),
    ("unknown tracking scheme", change("tracking.uri", "foo://bar"), ["tracking.uri", "foo://", "sqlite:///"]),
    ("a 300-character name", change("name", "x" * 300), ["name", "at most 100 characters"]),
    ("offload without ZeRO", lambda s: change("trial.offload_optimizer", True)(change("trial.zero_stage", 0)(s)),
     ["trial.offload_optimizer", "needs a ZeRO stage of 1, 2 or 3"]),
    ("doc_stride over max_seq_length", lambda s: change("target.tasks", ["xquad"])(change("trial.doc_stride", 64)(s)),
     ["trial.doc_stride", "64", "max_seq_length (64)"]),
    ("sqlite in a folder that does not exist", change("tracking.uri", "sqlite:////no/such/dir/x.db"),
     ["sqlite:////no/such/dir/x.db", "/no/such/dir", "does not exist"]),
    ("storage under a file", None, ["storage", "is a file, not a folder"]),
    ("cache_dir under a file", None, ["micro.cache_dir", "is a file, not a folder"]),
]


@pytest.mark.parametrize("case, mutate, named", STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_a_bad_study_file_is_refused_by_plan_and_run_alike_before_ray(case, mutate, named, tmp_path,
                                                                      ray_never_started):
    study = demo(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    if case == "storage under a file":
        study["storage"] = str(blocker / "results")
    elif case == "cache_dir under a file":
        study["micro"]["cache_dir"] = str(blocker / "cache")
    else:
        study = mutate(study)
    finished = tmp_path / "results" / "demo" / "stages" / "done.json"
    finished.parent.mkdir(parents=True)
    finished.write_text('{"kept": true}\n')
    outputs = [refused(tmp_path, study, command=command) for command in ("plan", "run")]
    assert outputs[0] == outputs[1]  # one validation pass: the same refusal from both
    assert str(tmp_path / "study.yaml") in outputs[0] or any(
        field in outputs[0] for field in ("storage", "cache_dir", "tracking URI"))
    for words in named:
        assert words in outputs[0], (words, outputs[0])
    assert finished.read_text() == '{"kept": true}\n'


def test_a_key_given_twice_and_a_binary_file_are_refused_with_their_line_or_byte(tmp_path, ray_never_started):
    text = (ROOT / "experiments" / "demo.yaml").read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2]\nseeds: [5]")
    out = refused(tmp_path, None, raw=text.encode())
    assert "key 'seeds' given twice" in out and "line" in out
    out = refused(tmp_path, None, raw=b"\xff\xfe\x00\x01binary")
    assert "not UTF-8 text" in out and "study.yaml" in out


CLI_CASES = [
    ("address where nothing listens", ["--address", "127.0.0.1:1"], ["--address 127.0.0.1:1", "no Ray cluster"]),
    ("unknown tracking scheme", ["--tracking-uri", "foo://bar"], ["foo://", "MLflow has no tracking store"]),
    ("storage URI nothing opens", ["--storage", "foo://bucket/x"], ["--storage", "foo://"]),
    ("--set without a value", ["--set", "trial.epochs"], ["--set trial.epochs", "FIELD=VALUE"]),
    ("--set of an unknown field", ["--set", "trial.epochz=3"], ["with --set trial.epochz=3", "unknown key(s) ['epochz']"]),
    ("--set of a wrong type", ["--set", "trial.epochs=many"], ["with --set trial.epochs=many", "trial.epochs"]),
    ("--set inside a value", ["--set", "name.x=1"], ["--set name.x=1", "name is a value"]),
    ("--set to infinity", ["--set", "trial.epochs=.inf"], ["trial.epochs", "not a finite number"]),
]


@pytest.mark.parametrize("case, options, named", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_a_bad_run_option_is_refused_before_ray(case, options, named, tmp_path, ray_never_started):
    out = refused(tmp_path, demo(tmp_path), *options)
    for words in named:
        assert words in out, (words, out)
    if options[0] == "--set":  # plan validates overrides as run does
        assert refused(tmp_path, demo(tmp_path), *options, command="plan") == out


def test_translate_without_its_data_root_is_refused_before_ray(tmp_path, ray_never_started):
    result = CliRunner().invoke(app, ["translate", "--root", str(tmp_path / "nope"), "--task", "mnli",
                                      "--languages", "de", "--model", "m"])
    assert result.exit_code == 2 and "--root" in result.output and "intermediate/mnli" in result.output


def test_a_password_in_the_tracking_uri_is_never_printed_or_recorded(tmp_path, ray_never_started):
    from ray_xt.study import recordable
    from ray_xt.tracking_uri import without_password

    assert without_password("http://alice:s3cret@host:5000") == "http://alice:***@host:5000"
    study = demo(tmp_path)
    study["tracking"]["uri"] = "http://alice:s3cret@127.0.0.1:1"
    out = refused(tmp_path, study)
    assert "s3cret" not in out and "alice:***@127.0.0.1:1" in out
    assert recordable(parse_study(study))["tracking"]["uri"] == "http://alice:***@127.0.0.1:1"


def _mutations(value):
    """Wrong types, NaN/inf, negative, huge, duplicates and empties for one field's value."""
    yield from ("text", None, True, [], {}, math.nan, math.inf, -math.inf, -1, 0, 10**15, 1e300)
    if isinstance(value, list):
        yield value + value[:1]
        yield [None]
    if isinstance(value, dict):
        yield {"unknown_key": 1}


def _leaves(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,), value
            yield from _leaves(value, prefix + (key,))


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda p: p.name)
def test_every_field_of_every_shipped_study_mutated_is_refused_cleanly_or_planned(shipped):
    """Property-style: each field of each shipped study file set to each bad value is either a ConfigError naming
    the field or a study that expands and costs - never any other exception."""
    from ray_xt.costs import ThroughputTable, estimate
    from ray_xt.stages import expand

    base = yaml.safe_load(shipped.read_text())
    checked = 0
    for path, value in _leaves(base):
        for bad in _mutations(value):
            study = copy.deepcopy(base)
            node = study
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = bad
            try:
                cfg = parse_study(study, shipped.name)
            except ConfigError as err:
                assert shipped.name in str(err) and "Traceback" not in str(err)
            else:
                estimate(cfg, expand(cfg), ThroughputTable(Path("/nonexistent/throughput.json")))
            checked += 1
    assert checked > 100


def _submission(tmp_path: Path, task: str, lang: str, predicted: bytes, gold: bytes, suffix: str = "tsv"):
    for folder, content in (("pred", predicted), ("gold", gold)):
        path = tmp_path / folder / task / f"test-{lang}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return tmp_path / "pred", tmp_path / "gold"


SQUAD = b'{"data": [{"paragraphs": [{"qas": [{"id": "q1", "answers": [{"text": "a cat"}]}]}]}]}'
SCORE_CASES = [
    ("malformed JSON", "xquad", b'{"q1": "a cat"', SQUAD, "json", ["pred/xquad/test-en.json", "not JSON", "line 1"]),
    ("a list, not an object", "xquad", b'["a cat"]', SQUAD, "json", ["pred/xquad/test-en.json", "JSON object"]),
    ("labels not SQuAD's layout", "xquad", b'{"q1": "a cat"}', b'{"data": [1, 2]}', "json",
     ["gold/xquad/test-en.json", "SQuAD's layout"]),
    ("empty prediction file", "xnli", b"", b"entailment\n", "tsv", ["pred/xnli/test-en.tsv", "has 0 examples"]),
    ("empty label file", "xnli", b"entailment\n", b"", "tsv", ["gold/xnli/test-en.tsv", "is empty"]),
    ("tag count mismatch", "udpos", b"NOUN\nVERB\n\nNOUN\n", b"NOUN\nVERB\n\nNOUN\nADJ\n", "tsv",
     ["sentence 2", "1 tags", "2 tokens"]),
    ("non-UTF-8 predictions", "pawsx", b"\xff\xfe1\n", b"1\n", "tsv", ["pred/pawsx/test-en.tsv", "not UTF-8"]),
    ("garbage BUCC lines", "bucc2018", b"garbage\nmore garbage\n", b"de-1\ten-1\n", "tsv",
     ["pred/bucc2018/test-de.tsv", "line 1", "source id<TAB>target id"]),
]


@pytest.mark.parametrize("case, task, predicted, gold, suffix, named", SCORE_CASES, ids=[c[0] for c in SCORE_CASES])
def test_a_bad_submission_file_is_named_not_scored(case, task, predicted, gold, suffix, named, tmp_path):
    lang = "de" if task == "bucc2018" else "en"
    pred, labels = _submission(tmp_path, task, lang, predicted, gold, suffix)
    result = CliRunner().invoke(app, ["score", "--predictions", str(pred), "--labels", str(labels),
                                      "--languages", lang])
    assert result.exit_code == 2 and "Traceback" not in result.output, (result.output, result.exception)
    for words in named:
        assert words in result.output, (words, result.output)


def test_score_reads_a_micro_worlds_languages_from_its_labels_and_checks_json_out_first(tmp_path):
    pred, labels = _submission(tmp_path, "xnli", "qca", b"entailment\nneutral\n", b"entailment\nentailment\n")
    _submission(tmp_path, "xnli", "en", b"neutral\n", b"neutral\n")
    result = CliRunner().invoke(app, ["score", "--predictions", str(pred), "--labels", str(labels)])
    assert result.exit_code == 0 and "| xnli | 2 | 75.00" in result.output, result.output
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["score", "--predictions", str(pred), "--labels", str(labels),
                                      "--json", str(blocker / "scores.json")])
    assert result.exit_code == 2 and "--json" in result.output and "is a file" in result.output


def test_a_grace_period_asha_can_never_reach_is_warned_in_the_plan(tmp_path, ray_never_started):
    """The demo's trials report twice (evals_per_epoch 2, one epoch): a grace period of 2 leaves ASHA nothing."""
    study = change("scheduler.grace_period", 2)(demo(tmp_path))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "study.yaml")])
    assert result.exit_code == 0, result.output
    assert "warning: scheduler.grace_period 2 is not shorter than the reports of 78 sweep stage(s) (78 stage(s) " \
           "with 2 report(s) per trial): ASHA can never stop their trials" in result.output
    result = CliRunner().invoke(app, ["plan", str(ROOT / "experiments" / "demo.yaml")])
    assert "ASHA can never stop" not in result.output


def test_a_data_folder_that_does_not_exist_is_refused_by_run_and_warned_by_plan(tmp_path, ray_never_started):
    """A cluster's study file names folders only its nodes have (phang2020's translations on /mnt/shared): plan, run
    anywhere, warns; run refuses before Ray starts."""
    study = demo(tmp_path)
    study.update(data={"source": "hub", "root": str(tmp_path / "xtreme"), "translations": "/no/such/translations"},
                 scales=["xlmr-base"], micro=None, target={"tasks": ["xnli"]},
                 intermediate={"tasks": ["mnli"], "conditions": ["en"]})
    study = {k: v for k, v in study.items() if v is not None}
    out = refused(tmp_path, study)
    assert "data.translations: folder /no/such/translations does not exist" in out
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    plan = CliRunner().invoke(app, ["plan", str(tmp_path / "study.yaml")])
    assert plan.exit_code == 0, plan.output
    assert "warning: data.translations: folder /no/such/translations does not exist" in plan.output
