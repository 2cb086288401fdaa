"""Strictness shared by every section of a study file: unknown keys refused with the valid ones, no booleans
where numbers or text belong, no repeated list items, no inf/NaN; and the one error type a bad study file raises."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator


class ConfigError(ValueError):
    """A study file is invalid; the message lists every problem with its field path."""


def _takes_bool(annotation) -> bool:
    """Whether a field of this type may hold true/false (YAML booleans are not numbers here)."""
    if annotation is bool:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    if get_origin(annotation) in (Union, getattr(__import__("types"), "UnionType", Union)):
        return any(_takes_bool(a) for a in get_args(annotation))
    return False


def _item_type(annotation):
    """The item type of a list field (through Optional), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is list:
            return (get_args(candidate) or (None,))[0]
    return None


class Strict(BaseModel):
    """Rejects unknown keys with the list of valid ones (pydantic's own message omits it), booleans where a number
    or text is expected (pydantic would read `epochs: true` as 1), duplicates in lists, and inf/NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data):
        if isinstance(data, dict):
            unknown = sorted(set(map(str, data)) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown key(s) {unknown}; valid keys: {sorted(cls.model_fields)}")
            problems = []
            for key, value in data.items():
                annotation = cls.model_fields[key].annotation
                if isinstance(value, bool) and not _takes_bool(annotation):
                    problems.append(f"{key}: {str(value).lower()} is not a {_kind(annotation)}")
                elif isinstance(value, list):
                    item = _item_type(annotation)
                    if any(isinstance(v, bool) for v in value) and item is not None and not _takes_bool(item):
                        problems.append(f"{key}: {value} holds true/false where a {_kind(item)} is expected")
                    hashable = [v for v in value if isinstance(v, (str, int, float))]
                    repeated = sorted({str(v) for v in hashable if hashable.count(v) > 1})
                    if repeated:
                        problems.append(f"{key}: {repeated} given more than once; list each once")
            if problems:
                raise ValueError("; ".join(problems))
        return data


def _accepted(value: str, problem: str | None, prefix: str) -> str:
    """``value`` when its check found no problem; else the problem, less the field name pydantic puts before it."""
    if problem:
        raise ValueError(problem.removeprefix(prefix))
    return value


def known(values: list[str], valid, what: str) -> list[str]:
    """``values`` when each is one of ``valid``; else an error naming the unknown ones and the valid ones."""
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid: {list(valid)}")
    return values


def _kind(annotation) -> str:
    names = {int: "whole number", float: "number", str: "text", Path: "path"}
    for candidate in (annotation, *get_args(annotation)):
        if candidate in names:
            return names[candidate]
    return "value of this field"


