"""A study file read: YAML with duplicate keys refused, ``--set`` overrides applied, validated into a StudyConfig,
every problem reported with its field path; and a study narrowed to some of its seeds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from ray_xt.config.strict import ConfigError
from ray_xt.config.study import StudyConfig


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid study configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            msg = f"{msg} (got {e['input']!r})"
        elif e["type"] == "finite_number":
            msg = f"not a finite number (got {e['input']!r}); give a number, e.g. 2"
        elif e["type"] in ("int_parsing", "float_parsing", "bool_parsing", "string_type", "int_type", "list_type",
                           "greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_from_float",
                           "string_pattern_mismatch", "too_long", "dict_type", "model_type"):
            msg = f"{msg} (got {e['input']!r})"
        if e["type"] == "value_error" and re.match(r"^[a-z_]+(\.[a-z_-]+)*: ", msg):
            # a check that names its own field: placed under the section it was raised in
            lines.append(f"  - {'' if loc == '(top level)' else loc + '.'}{msg}")
        else:
            lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_study(data: dict, source: str = "<dict>") -> StudyConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of study settings at the top level, got {type(data).__name__}")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with a key given twice in one mapping refused (YAML's last-wins would hide the first value)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping (first on line {seen[key] + 1}); keep one",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A study file's settings with ``--set FIELD=VALUE`` overrides applied (FIELD dotted, as in the file:
    trial.epochs, search.learning_rate.low, task_overrides.udpos.epochs; VALUE read as YAML: 3, 1e-4, [a, b],
    true). The result is validated as the file is."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        field, sep, text = item.partition("=")
        parts = field.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item}: expected FIELD=VALUE with FIELD as in the study file, e.g. "
                              "--set trial.epochs=3 (`ray-xt config explain` lists the fields)")
        try:
            value = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item}: the value is not YAML ({err})") from None
        node = data
        for depth, key in enumerate(parts[:-1], 1):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: {'.'.join(parts[:depth])} is a value ({child!r}), not a group of "
                                  "settings")
            node = child
        node[parts[-1]] = value
    return data


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Load and validate a study YAML (with ``--set`` overrides); raises ConfigError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found (experiments/ holds the shipped ones)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); a study file is YAML text, e.g. "
                          "experiments/demo.yaml") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not overrides:
        return parse_study(data, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of study settings at the top level, got {type(data).__name__}")
    return parse_study(apply_overrides(data, overrides), f"{path} with --set {' --set '.join(overrides)}")


def only_seeds(cfg: StudyConfig, seeds: str, source: str) -> StudyConfig:
    """The study narrowed to some of its own seeds (``--seeds 0``): the same stages, keys and storage, so a later
    run of the whole study skips what this one finished."""
    try:
        chosen = [int(seed) for seed in seeds.split(",")]
    except ValueError:
        raise ConfigError(f"{source}: --seeds {seeds} must be comma-separated integers, e.g. 0 or 0,1") from None
    unknown = [seed for seed in chosen if seed not in cfg.seeds]
    if unknown:
        raise ConfigError(f"{source}: --seeds {seeds}: seed(s) {unknown} are not in the study's seeds {cfg.seeds}; "
                          "add them to seeds: in the YAML to run them")
    # a sequential study narrowed to chosen seeds runs just those (its rule applies to whole runs)
    return cfg.model_copy(update={"seeds": sorted(set(chosen), key=chosen.index), "sequential": None})


