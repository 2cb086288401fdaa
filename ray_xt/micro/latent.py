"""The latent world every micro-world language talks about: entities, attributes, events."""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Set
from dataclasses import dataclass, field, replace

NOUNS = (
    "dog cat bird horse fish cow sheep goat wolf bear fox mouse lion frog duck "
    "man woman child farmer doctor teacher king queen baker sailor "
    "apple bread stone book ball box cup car boat house tree flower river hill door key letter song"
).split()
NAMES = "anna boris carla dmitri elena farid greta hiro ines jonas kemal lena marco nadia omar priya".split()
ADJECTIVES = "big small red blue green old young happy tall short black white".split()
VERBS = "see eat find carry push pull like help follow watch hold paint open call wash take".split()
PLACES = "garden forest city market school kitchen field village".split()
FUNCTION = ("in", "what")  # appended last: earlier words keep their random forms
# Background knowledge: how often a clause with a common-noun subject happens at that noun's home place. The
# corpus of every language states it (never in parallel), so a model can learn it in pretraining; the
# CommonsenseQA analogue asks for it without a context.
HOME_PLACE_RATE = 0.8
# Selectional preferences: how often a verb follows one of its subject's usual verbs, an object is one of its
# verb's usual objects, and an adjective one of its noun's usual adjectives. Monolingual corpora only align
# across languages through structure they share (Conneau et al. 2020); with uniformly random verbs, objects and
# adjectives every word of a class had the same co-occurrence profile, so nothing told a random-lexicon
# language's verbs apart from one another except their (unshared) form. These fixed preferences give every word
# a fingerprint that is the same in every language.
SELECTION_RATE = 0.75
VERBS_PER_NOUN, OBJECTS_PER_VERB, ADJECTIVES_PER_NOUN = 4, 8, 3
# Coherent text: how often a sentence's second clause is about a participant of its first ("the dog sees the cat
# and the cat eats the apple"). Real text keeps mentioning the same entities; with independent clauses nothing in
# a monolingual corpus rewarded finding the same word elsewhere in a sequence, the skill that pair tasks (is every
# word of the second sentence in the first?) need, and one that works the same in every language.
CONTINUATION_RATE = 0.8


@functools.cache  # a pure function of its arguments, asked millions of times per world
def preferences(word: str, pool: tuple[str, ...], k: int, kind: str) -> tuple[str, ...]:
    """The ``k`` members of ``pool`` that ``word`` usually goes with: a fixed fact of the latent world."""
    return tuple(random.Random(zlib.crc32(f"{kind}:{word}".encode())).sample(pool, k))


def home_place(noun: str, places: tuple[str, ...] = tuple(PLACES)) -> str:
    """The place where ``noun`` usually is: a fixed fact of the latent world (stable across runs and seeds)."""
    return places[zlib.crc32(noun.encode()) % len(places)]


@dataclass(frozen=True)
class Vocabulary:
    nouns: tuple[str, ...] = tuple(NOUNS)
    names: tuple[str, ...] = tuple(NAMES)
    adjectives: tuple[str, ...] = tuple(ADJECTIVES)
    verbs: tuple[str, ...] = tuple(VERBS)
    places: tuple[str, ...] = tuple(PLACES)

    @property
    def all_words(self) -> tuple[str, ...]:
        return self.nouns + self.adjectives + self.verbs + self.places + FUNCTION


@dataclass(frozen=True)
class NounPhrase:
    noun: str
    adjectives: tuple[str, ...] = ()
    plural: bool = False
    is_name: bool = False


@dataclass(frozen=True)
class Clause:
    subject: NounPhrase
    verb: str
    object: NounPhrase
    past: bool = False
    negated: bool = False
    place: str | None = None
    place_first: bool = False  # "in the garden, the dog sees the cat": same meaning, other order

    def swapped_roles(self) -> Clause:
        """Same words, roles exchanged: the PAWS-style adversarial non-paraphrase."""
        return replace(self, subject=self.object, object=self.subject)


@dataclass
class LatentSampler:
    """Samples latent clauses; the only source of randomness for task content."""

    rng: random.Random
    vocabulary: Vocabulary = field(default_factory=Vocabulary)

    def _preferred(self, usual: tuple[str, ...], pool: tuple[str, ...], exclude: set[str]) -> str:
        """One of ``usual`` (at SELECTION_RATE, when any is allowed), else any allowed member of ``pool``."""
        allowed = [w for w in usual if w not in exclude]
        if allowed and self.rng.random() < SELECTION_RATE:
            return self.rng.choice(allowed)
        return self.rng.choice([w for w in pool if w not in exclude])

    def noun_phrase(self, exclude: Set[str] = frozenset(), usual: tuple[str, ...] = ()) -> NounPhrase:
        """A name (30%) or a common noun, one of ``usual`` at SELECTION_RATE, with its usual adjectives."""
        v, rng = self.vocabulary, self.rng
        if rng.random() < 0.3:
            name = rng.choice([n for n in v.names if n not in exclude])
            return NounPhrase(noun=name, is_name=True)
        noun = self._preferred(usual, v.nouns, set(exclude))
        n_adj = rng.choice((0, 0, 1, 1, 2))
        usual_adjs = preferences(noun, v.adjectives, ADJECTIVES_PER_NOUN, "adjective")
        pool = usual_adjs if rng.random() < SELECTION_RATE else v.adjectives
        adjs = tuple(rng.sample(pool, n_adj))
        return NounPhrase(noun=noun, adjectives=adjs, plural=rng.random() < 0.3)

    def verb_for(self, subject: NounPhrase, exclude: Set[str] = frozenset()) -> str:
        """A verb for ``subject``: one of a common noun's usual verbs at SELECTION_RATE (names have none)."""
        v = self.vocabulary
        usual = () if subject.is_name else preferences(subject.noun, v.verbs, VERBS_PER_NOUN, "verb")
        return self._preferred(usual, v.verbs, set(exclude))

    def object_for(self, verb: str, exclude: Set[str] = frozenset()) -> NounPhrase:
        return self.noun_phrase(exclude=exclude, usual=preferences(verb, self.vocabulary.nouns, OBJECTS_PER_VERB,
                                                                   "object"))

    def clause(self, exclude_subjects: Set[str] = frozenset(), subject: NounPhrase | None = None) -> Clause:
        rng = self.rng
        subject = subject or self.noun_phrase(exclude=set(exclude_subjects))
        verb = self.verb_for(subject)
        obj = self.object_for(verb, exclude={subject.noun})
        return Clause(
            subject=subject,
            verb=verb,
            object=obj,
            past=rng.random() < 0.4,
            negated=rng.random() < 0.15,
            place=self._place(subject) if rng.random() < 0.3 else None,
            place_first=rng.random() < 0.3,
        )

    def continuation(self, previous: Clause) -> Clause:
        """A clause about one of ``previous``'s participants (at CONTINUATION_RATE), else an independent one."""
        if self.rng.random() >= CONTINUATION_RATE:
            return self.clause()
        topic = self.rng.choice((previous.subject, previous.object))
        if self.rng.random() < 0.5:  # a repeated mention often drops its adjectives ("a big dog ... the dog")
            topic = replace(topic, adjectives=())
        return self.clause(subject=topic)

    def _place(self, subject: NounPhrase) -> str:
        place = self.rng.choice(self.vocabulary.places)
        if not subject.is_name and self.rng.random() < HOME_PLACE_RATE:
            return home_place(subject.noun, self.vocabulary.places)
        return place

    def with_place(self, clause: Clause) -> Clause:
        return clause if clause.place else replace(clause, place=self._place(clause.subject))

    def generalised(self, clause: Clause) -> Clause:
        """Entailed by ``clause``: adjectives and the place dropped (a less specific statement)."""
        return replace(
            clause, subject=replace(clause.subject, adjectives=()), object=replace(clause.object, adjectives=()),
            place=None if self.rng.random() < 0.5 else clause.place,
        )

    def changed(self, clause: Clause) -> Clause:
        """A clause that contradicts ``clause``: flipped polarity, other object, or other verb.

        The replacement follows the same selectional preferences as any clause, so a contradiction is no less
        plausible than an entailment (plausibility is not a cue to the label).
        """
        kind = self.rng.choice(("negate", "object", "verb"))
        if kind == "negate":
            return replace(clause, negated=not clause.negated)
        if kind == "object":
            new_obj = self.object_for(clause.verb, exclude={clause.subject.noun, clause.object.noun})
            return replace(clause, object=new_obj)
        return replace(clause, verb=self.verb_for(clause.subject, exclude={clause.verb}))
