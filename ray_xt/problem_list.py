"""Problems found before a study starts, grouped by cause: one line per cause with its count and first example
on the console, every problem in a file the message names (a study without the hub had 289 of one cause)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONSOLE_CAUSES = 20  # causes shown on the console; the file has every problem
LISTED_ITEMS = 5  # a cause with at most this many items lists each of them


@dataclass(frozen=True)
class Problem:
    cause: str  # what went wrong, worded the same for every item it hit
    item: str = ""  # what it hit (a task, split and language; a file)
    fix: str = ""  # what to do about it, once per cause
    source: str = ""  # the dataset it came from, counted per cause

    def __str__(self) -> str:
        return ": ".join(x for x in (self.item, self.cause) if x) + (f"; {self.fix}" if self.fix else "")


def error_cause(err: BaseException) -> str:
    """An exception as a cause the same for every item it hit: its type and first line, with quoted names,
    URLs and paths taken out (``Couldn't reach '…' on the Hub (OfflineModeIsEnabled)``)."""
    first = (str(err).splitlines() or [""])[0][:200]
    for pattern in (r"https?://\S+", r"\b[\w.-]+/[\w./-]+", r"(?<!\w)/\S+", r"'[^'\s]*'", r'"[^"\s]*"'):
        first = re.sub(pattern, "…", first)  # URLs, org/name ids, paths, then quoted single words
    return f"{type(err).__name__}: {first}"


def as_problem(problem: Problem | str) -> Problem:
    return problem if isinstance(problem, Problem) else Problem(cause=problem)


def grouped_message(title: str, problems: list[Problem | str], full_list: Path | None = None,
                    footer: str = "") -> str:
    """``title``, then one line per cause (most frequent first): count, datasets, first item, fix; the whole
    list written to ``full_list`` (and named) when some causes hit more than one item or causes are cut."""
    items = [as_problem(p) for p in problems]
    causes: dict[str, list[Problem]] = {}
    for p in items:
        causes.setdefault(p.cause, []).append(p)
    ordered = sorted(causes.values(), key=lambda group: -len(group))
    lines = []
    for group in ordered[:CONSOLE_CAUSES]:
        first = group[0]
        if len(group) <= LISTED_ITEMS:  # a few: each in full
            lines += [str(p) for p in group]
            continue
        sources = sorted({p.source for p in group if p.source})
        where = f" from {len(sources)} dataset(s) ({', '.join(sources[:4])}{', ...' if len(sources) > 4 else ''})" \
            if sources else ""
        lines.append(f"{first.cause}: {len(group)} items{where}, e.g. {first.item}"
                     + (f"; {first.fix}" if first.fix else ""))
    if len(ordered) > CONSOLE_CAUSES:
        lines.append(f"... and {len(ordered) - CONSOLE_CAUSES} more cause(s)")
    text = f"{title}: {len(items)} problem(s), {len(ordered)} cause(s)\n  - " + "\n  - ".join(lines)
    if full_list is not None and (len(items) > len(lines) or len(ordered) > CONSOLE_CAUSES):
        full_list.parent.mkdir(parents=True, exist_ok=True)
        full_list.write_text("".join(f"{p}\n" for p in items), encoding="utf-8")
        text += f"\n(every problem, one per line: {full_list})"
    return text + (f"\n{footer}" if footer else "")
