"""Span-QA and multiple-choice analogues: paragraphs of clauses, wh-questions about one participant."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from ray_xt.micro.languages import Renderer
from ray_xt.micro.latent import Clause, LatentSampler, home_place


@dataclass(frozen=True)
class LatentQuestion:
    paragraph: list[Clause]
    clause_index: int
    asked: str  # subj | obj


def qa_example(s: LatentSampler) -> LatentQuestion:
    """A 2-4 sentence paragraph with distinct subjects, and a question about one clause's subject or object."""
    clauses: list[Clause] = []
    for _ in range(s.rng.choice((2, 3, 4))):
        clauses.append(s.clause(exclude_subjects={c.subject.noun for c in clauses}))
    return LatentQuestion(clauses, s.rng.randrange(len(clauses)), s.rng.choice(("subj", "obj")))


def render_squad(renderer: Renderer, q: LatentQuestion, qid: str) -> dict:
    """One SQuAD v1.1 paragraph entry: context, question and the gold span with its character offset."""
    words, start_of = [], {}
    offset = 0
    for i, clause in enumerate(q.paragraph):
        for j, tok in enumerate(renderer.tokens([clause])):
            start_of[(i, j)] = offset
            words.append(tok)
            offset += len(tok.text) + 1
    context = " ".join(t.text for t in words)
    clause_tokens = renderer.tokens([q.paragraph[q.clause_index]])
    span = [j for j, t in enumerate(clause_tokens) if t.role == q.asked]
    answer = " ".join(clause_tokens[j].text for j in span)
    start = start_of[(q.clause_index, span[0])]
    assert context[start : start + len(answer)] == answer
    question = " ".join(t.text for t in renderer.question_tokens(q.paragraph[q.clause_index], q.asked))
    return {"context": context, "qas": [{"id": qid, "question": question,
                                          "answers": [{"text": answer, "answer_start": start}]}]}


def squad_document(renderer: Renderer, questions: list[LatentQuestion], prefix: str) -> dict:
    paragraphs = [render_squad(renderer, q, f"{prefix}-{i}") for i, q in enumerate(questions)]
    return {"version": "1.1", "data": [{"title": prefix, "paragraphs": paragraphs}]}


def multiple_choice(renderer: Renderer, q: LatentQuestion, n_choices: int, rng: random.Random, qid: str,
                    with_context: bool = True) -> dict:
    """CosmosQA/SocialIQA-style row: context, question, choices (noun phrases), label.

    Distractors are the other participants of the paragraph (then random ones), so
    only reading the right clause answers it.
    """
    def np_text(clause: Clause, role: str) -> str:
        return " ".join(t.text for t in renderer.tokens([clause]) if t.role == role)

    gold = np_text(q.paragraph[q.clause_index], q.asked)
    pool = [np_text(c, r) for c in q.paragraph for r in ("subj", "obj")]
    distractors = list(dict.fromkeys(x for x in pool if x != gold))
    rng.shuffle(distractors)
    choices = [gold] + distractors[: n_choices - 1]
    while len(choices) < n_choices:  # short paragraphs: pad with participants of fresh clauses
        extra = np_text(LatentSampler(rng).clause(), "subj")
        if extra not in choices:
            choices.append(extra)
    rng.shuffle(choices)
    context = " ".join(renderer.render([c]) for c in q.paragraph) if with_context else ""
    question = " ".join(t.text for t in renderer.question_tokens(q.paragraph[q.clause_index], q.asked))
    return {"id": qid, "context": context, "question": question, "choices": choices, "label": choices.index(gold)}


def completion(renderer: Renderer, s: LatentSampler, n_choices: int, qid: str) -> dict:
    """HellaSwag-style row: a context sentence and endings; the right ending is consistent with it."""
    first = s.clause()
    right = s.generalised(first)
    wrong: list = []
    while len(wrong) < n_choices - 1:
        cand = s.changed(first)
        if cand != right and cand not in wrong:
            wrong.append(cand)
    endings = [right] + wrong
    order = list(range(n_choices))
    s.rng.shuffle(order)
    return {"id": qid, "context": renderer.render([first]), "question": "",
            "choices": [renderer.render([endings[k]]) for k in order], "label": order.index(0)}


def commonsense(renderer: Renderer, s: LatentSampler, n_choices: int, qid: str) -> dict:
    """CommonsenseQA-style row, no context: "the dog sees the cat in what?" -- the subject noun's home place.

    The answer is background knowledge of the latent world (``home_place``) that each language's monolingual
    corpus states; distractors are other places.
    """
    clause = s.clause()
    while clause.subject.is_name:
        clause = s.clause()
    gold = home_place(clause.subject.noun, s.vocabulary.places)
    clause = replace(clause, place=gold)
    places = [p for p in s.vocabulary.places if p != gold]
    choices = [gold] + s.rng.sample(places, n_choices - 1)
    s.rng.shuffle(choices)
    question = " ".join(t.text for t in renderer.question_tokens(clause, "place"))
    return {"id": qid, "context": "", "question": question, "choices": [renderer.word(c) for c in choices],
            "label": choices.index(gold)}
