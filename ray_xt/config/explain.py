"""`ray-xt config explain`: every study-file setting with its type, default and description, from the models."""

from __future__ import annotations

from typing import get_args, get_origin

from pydantic import BaseModel

from ray_xt.config.strict import ConfigError
from ray_xt.config.study import StudyConfig


def explain(field: str | None = None) -> list[str]:
    """Every study-file setting under ``field`` (all when None), one line each: dotted name, type, default and
    description, from the models' own fields. Raises ConfigError for a field the study file has no place for."""
    lines = [line for line in _explain(StudyConfig, "") if field is None or line[0] == field
             or line[0].startswith(field + ".")]
    if not lines:
        top = ", ".join(StudyConfig.model_fields)
        raise ConfigError(f"no study setting {field!r}; top-level settings: {top}")
    width = max(len(name) for name, _ in lines)
    return [f"{name.ljust(width)}  {text}" for name, text in lines]


def _explain(model: type[BaseModel], prefix: str) -> list[tuple[str, str]]:
    out = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        annotation = info.annotation
        per_key = get_args(annotation)[1] if get_origin(annotation) is dict else None
        per_key = per_key if isinstance(per_key, type) and issubclass(per_key, BaseModel) else None
        inner = [] if per_key else [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
        group = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        kind = "group" if group else "one group per key" if per_key else _type_name(annotation)
        about = info.description or (group.__doc__ or "").strip().split("\n")[0] if group else info.description
        default = "" if info.is_required() or group or per_key else f" = {info.get_default(call_default_factory=True)!r}"
        out.append((dotted, f"{kind}{default}" + (f" — {about}" if about else "")))
        if group:
            out += _explain(group, dotted + ".")
        elif per_key:
            out += _explain(per_key, dotted + ".<key>.")
    return out


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "None")


