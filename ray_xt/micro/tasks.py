"""Micro-world task generators: latent examples that every language renders.

Each generator returns latent examples (clauses + label); ``world.py`` renders
them per language and writes them in the real XTREME file formats, so the
loaders in ``ray_xt.tasks`` read micro and real data through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ray_xt.micro.latent import Clause, LatentSampler


@dataclass(frozen=True)
class LatentPair:
    first: list[Clause]
    second: list[Clause]
    label: str


def nli_example(s: LatentSampler) -> LatentPair:
    """MNLI/XNLI analogue over one premise clause.

    entailment: the premise itself or a generalisation of it (adjectives or place dropped);
    contradiction: the same participants with flipped polarity, another verb or another object;
    neutral: a statement about someone the premise does not mention.
    """
    premise = s.clause()
    label = s.rng.choice(("entailment", "neutral", "contradiction"))
    if label == "entailment":
        hyp = s.generalised(premise) if s.rng.random() < 0.6 else premise
    elif label == "contradiction":
        hyp = s.changed(premise)
    else:
        hyp = s.clause(exclude_subjects={premise.subject.noun, premise.object.noun})
    return LatentPair([premise], [hyp], label)


def paraphrase_example(s: LatentSampler) -> LatentPair:
    """PAWS-X/QQP analogue over one clause with a place phrase.

    The second sentence always moves the place phrase (so surface order is no cue).
    Paraphrase: nothing else changes. Non-paraphrase: one content word changes
    (lexical, easier) or subject and object swap roles (PAWS's adversarial case:
    the same bag of words, harder).
    """
    from dataclasses import replace

    c = s.with_place(s.clause())
    moved = replace(c, place_first=not c.place_first)
    r = s.rng.random()
    if r < 0.5:
        return LatentPair([c], [moved], "1")
    if r < 0.75:
        return LatentPair([c], [s.changed(moved)], "0")
    return LatentPair([c], [moved.swapped_roles()], "0")


def adversarial_nli_example(s: LatentSampler) -> LatentPair:
    """ANLI analogue: a two-clause premise, so the hypothesis must first be matched to the right clause."""
    c1 = s.clause()
    c2 = s.clause(exclude_subjects={c1.subject.noun})
    label = s.rng.choice(("entailment", "neutral", "contradiction"))
    kept = s.rng.choice((c1, c2))
    if label == "entailment":
        hyp = s.generalised(kept)
    elif label == "contradiction":
        hyp = s.changed(kept)
    else:
        hyp = s.clause(exclude_subjects={c1.subject.noun, c2.subject.noun, c1.object.noun, c2.object.noun})
    return LatentPair([c1, c2], [hyp], label)


@dataclass(frozen=True)
class MicroTaskSpec:
    generator: Callable[[LatentSampler], LatentPair]  # file layouts: ray_xt.tasks.registry

PAIR_TASKS: dict[str, MicroTaskSpec] = {
    "xnli": MicroTaskSpec(nli_example),
    "pawsx": MicroTaskSpec(paraphrase_example),
    "mnli": MicroTaskSpec(nli_example),
    "qqp": MicroTaskSpec(paraphrase_example),
    "anli": MicroTaskSpec(adversarial_nli_example),
}


# Tagging tasks: which token annotation is the label (file layouts: ray_xt.tasks.registry).
TAGGING_TASKS: dict[str, str] = {
    "udpos": "pos",
    "panx": "ner",
    "ccg": "supertag",  # supertag-like: part of speech / syntactic role
}
# Retrieval tasks have no training data: parallel sentences only.
RETRIEVAL_TASKS: dict[str, str] = {"tatoeba": "download/tatoeba", "bucc2018": "download/bucc2018"}
# Span QA (SQuAD v1.1 JSON) in XTREME's download layout.
QA_TASKS: tuple[str, ...] = ("squad", "xquad", "mlqa", "tydiqa")
# Multiple choice (JSON lines: context, question, choices, label): (number of choices, kind).
MC_TASKS: dict[str, tuple[int, str]] = {"hellaswag": (4, "completion"), "cosmosqa": (4, "reading"),
                                        "socialiqa": (3, "reading"), "commonsenseqa": (5, "knowledge")}
ALL_TASKS: tuple[str, ...] = (
    tuple(PAIR_TASKS) + tuple(TAGGING_TASKS) + tuple(RETRIEVAL_TASKS) + QA_TASKS + tuple(MC_TASKS)
)
