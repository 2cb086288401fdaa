"""Synthetic languages of the micro world: one latent grammar, many surface forms.

Each language renders the same latent clause (see ``latent.py``) with its own
lexicon, script, word order, modifier placement and affixes.  The knobs follow
K et al. 2020 ("Cross-Lingual Ability of Multilingual BERT"): structural
similarity (word order) matters more than subword overlap, so the profiles
vary both independently.  Proper names are shared across all languages (in
each language's script) and act as the anchor tokens Conneau et al. 2020 found
helpful but not essential.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from ray_xt.micro.latent import Clause, NounPhrase, Vocabulary

ANCHOR = "\u0001"  # marks words kept in Latin script (names) until the script is applied

# Contiguous lowercase letter blocks; a Latin letter maps to block_start + index.
_SCRIPT_BLOCKS = {
    "latin": None,
    "cyrillic": 0x0430,  # а..я
    "greek": 0x03B1,  # α..ω
    "georgian": 0x10D0,  # ა..
    "armenian": 0x0561,  # ա..
}


@dataclass(frozen=True)
class LanguageProfile:
    """The typological profile of one micro-world language (documented in the README)."""

    code: str
    name: str
    script: str = "latin"
    word_order: str = "SVO"  # SVO | SOV | VSO
    adjective_position: str = "pre"  # pre | post (relative to the noun)
    lexicon: str = "english"  # english | cognate | random
    plural_affix: str = "s"
    past_affix: str = "ed"
    affix_side: str = "suffix"  # suffix | prefix
    object_marker: str = ""  # case suffix on the object noun ("" = none)
    negation: str = "not"
    conjunction: str = "and"
    determiner: str = "the"
    syllables: tuple[str, ...] = ()
    # Share of content words that the language's web text (its pretraining corpus, never its task data) writes
    # as English loans in Latin script: the code-switching of real web corpora, and an anchor (Conneau et al.
    # 2020) that ties a random lexicon's words to English ones without a single parallel sentence.
    code_switch: float = 0.0

    def describe(self) -> str:
        overlap = {"english": "identical", "cognate": "high (cognates)", "random": "names only"}[self.lexicon]
        if self.script != "latin":
            overlap = "names only (other script)" if self.lexicon == "random" else "none on the surface (transliterated cognates)"
        if self.code_switch:
            overlap += f", and {self.code_switch:.0%} of content words as English loans in web text"
        return (
            f"{self.code}: {self.name}; script {self.script}; order {self.word_order}; adjectives {self.adjective_position}-nominal; "
            f"morphology {self.affix_side}es -{self.plural_affix}/-{self.past_affix}"
            + (f", object case -{self.object_marker}" if self.object_marker else "")
            + f"; subword overlap with English: {overlap}"
        )


ENGLISH = LanguageProfile(code="en", name="English")

# Six synthetic languages from close to far.  Codes are from ISO 639's
# local-use range (qaa-qtz) so they can never be mistaken for real languages.
SYNTHETIC = (
    LanguageProfile(code="qca", name="Cognata", lexicon="cognate", plural_affix="en", past_affix="et"),
    LanguageProfile(
        code="qcy", name="Cyrillic Cognata", script="cyrillic", lexicon="cognate", plural_affix="en", past_affix="et"
    ),
    LanguageProfile(
        code="qso", name="Sovish", word_order="SOV", adjective_position="post", lexicon="random",
        plural_affix="ak", past_affix="ta", object_marker="o", negation="ne", conjunction="ka", determiner="",
        syllables=("ka", "ri", "mo", "te", "su", "la", "ni", "po", "ga", "ve", "du", "zo"), code_switch=0.3,
    ),
    LanguageProfile(
        code="qgr", name="Verbish", script="greek", word_order="VSO", adjective_position="post", lexicon="random",
        plural_affix="ol", past_affix="im", affix_side="prefix", negation="mu", conjunction="te", determiner="ho",
        syllables=("ba", "lo", "mi", "ne", "ta", "ko", "ri", "sa", "fe", "gu", "pi", "do"), code_switch=0.3,
    ),
    LanguageProfile(
        code="qka", name="Kartic", script="georgian", word_order="SOV", adjective_position="pre", lexicon="random",
        plural_affix="eb", past_affix="ia", object_marker="s", negation="ar", conjunction="da", determiner="",
        syllables=("tsa", "kvi", "mo", "ga", "li", "re", "so", "da", "vi", "ne", "khu", "be"), code_switch=0.3,
    ),
    LanguageProfile(
        code="qhy", name="Armenic", script="armenian", word_order="SVO", adjective_position="post", lexicon="random",
        plural_affix="ner", past_affix="av", affix_side="prefix", negation="che", conjunction="u", determiner="",
        syllables=("ar", "ma", "tes", "go", "ri", "van", "ke", "lu", "sa", "hon", "pi", "da"), code_switch=0.3,
    ),
)

LANGUAGES: dict[str, LanguageProfile] = {p.code: p for p in (ENGLISH, *SYNTHETIC)}


def _cognate(word: str) -> str:
    """Deterministic sound changes: keeps most subwords shared with English."""
    for old, new in (("th", "d"), ("c", "k"), ("w", "v"), ("sh", "sj"), ("ee", "ie"), ("oo", "u"), ("y", "i")):
        word = word.replace(old, new)
    return word + ("e" if word[-1] not in "aeiou" else "")


@dataclass(frozen=True)
class Token:
    """One rendered word with its gold annotations (for the tagging tasks)."""

    text: str
    pos: str  # Universal Dependencies UPOS
    ner: str = "O"  # BIO; names are PER, places LOC
    role: str = ""  # subj | obj | pred | place | conj | punct: the supertag-like annotation

    @property
    def supertag(self) -> str:
        return f"{self.pos}/{self.role}"


class Renderer:
    """Turns latent clauses into sentences of one language (deterministic given the world seed)."""

    def __init__(self, profile: LanguageProfile, vocabulary: Vocabulary, seed: int,
                 code_switch_rng: random.Random | None = None):
        self.profile = profile
        self.vocabulary = vocabulary
        self.seed = seed
        self._code_switch_rng = code_switch_rng  # set only for web text (see ``web_text``)

    def web_text(self, rng: random.Random) -> Renderer:
        """This language as its pretraining corpus writes it: with the profile's English loans (code-switching)."""
        return Renderer(self.profile, self.vocabulary, self.seed, code_switch_rng=rng)

    def _content(self, lemma: str) -> str:
        """A content word's form; in web text sometimes the English loan (Latin script, marked as an anchor)."""
        rng = self._code_switch_rng
        if rng is not None and self.profile.code_switch and rng.random() < self.profile.code_switch:
            return ANCHOR + lemma
        return self.lexicon[lemma]

    @cached_property
    def lexicon(self) -> dict[str, str]:
        p = self.profile
        if p.lexicon == "english":
            return {w: w for w in self.vocabulary.all_words}
        if p.lexicon == "cognate":
            return {w: _cognate(w) for w in self.vocabulary.all_words}
        rng = random.Random(f"{self.seed}-{p.code}-lexicon")
        used: set[str] = set()
        lex = {}
        for w in self.vocabulary.all_words:
            while True:
                form = "".join(rng.choice(p.syllables) for _ in range(rng.choice((1, 2, 2, 3))))
                if form not in used and len(form) > 1:
                    used.add(form)
                    lex[w] = form
                    break
        return lex

    @cached_property
    def _letters(self) -> dict[int, str] | None:
        """The script's translation table for ``str.translate`` (a..z to the block; other characters kept)."""
        base = _SCRIPT_BLOCKS[self.profile.script]
        return None if base is None else {ord(c): chr(base + ord(c) - 97) for c in "abcdefghijklmnopqrstuvwxyz"}

    def _script(self, text: str) -> str:
        """The text in the language's script; words marked as anchors (names, loans) stay in Latin script."""
        table = self._letters
        if table is None:
            return text.replace(ANCHOR, "")
        if ANCHOR not in text:
            return text.translate(table)
        return " ".join(w[1:] if w.startswith(ANCHOR) else w.translate(table) for w in text.split(" "))

    def _scripted(self, t: Token) -> Token:
        return Token(self._script(t.text), t.pos, t.ner, t.role)  # not dataclasses.replace: ~10x slower

    def _affix(self, stem: str, affix: str) -> str:
        if stem.startswith(ANCHOR):  # a loan takes the native affix, in its own (Latin) script
            return ANCHOR + self._affix(stem[1:], affix)
        return stem + affix if self.profile.affix_side == "suffix" else affix + stem

    def _noun_phrase(self, np: NounPhrase, role: str) -> list[Token]:
        p = self.profile
        if np.is_name:
            # names are anchors: spelled identically, in Latin script, in every language
            noun = Token(ANCHOR + np.noun, "PROPN", "B-PER", role)
        else:
            text = self._content(np.noun)
            noun = Token(self._affix(text, p.plural_affix) if np.plural else text, "NOUN", "O", role)
        if role == "obj" and p.object_marker:
            noun = Token(noun.text + p.object_marker, noun.pos, noun.ner, noun.role)
        adjs = [Token(self._content(a), "ADJ", "O", role) for a in np.adjectives]
        tokens = adjs + [noun] if p.adjective_position == "pre" else [noun] + adjs
        if p.determiner and not np.is_name:
            tokens = [Token(p.determiner, "DET", "O", role)] + tokens
        return tokens

    def _verb(self, clause: Clause) -> list[Token]:
        verb = self._content(clause.verb)
        if clause.past:
            verb = self._affix(verb, self.profile.past_affix)
        tokens = [Token(verb, "VERB", "O", "pred")]
        return [Token(self.profile.negation, "PART", "O", "pred")] + tokens if clause.negated else tokens

    def clause_tokens(self, clause: Clause) -> list[Token]:
        s = self._noun_phrase(clause.subject, "subj")
        o = self._noun_phrase(clause.object, "obj")
        v = self._verb(clause)
        order = {"SVO": (s, v, o), "SOV": (s, o, v), "VSO": (v, s, o)}[self.profile.word_order]
        tokens = [t for part in order for t in part]
        if clause.place:
            p = self.profile
            adp = Token(self.lexicon["in"], "ADP", "O", "place")
            noun = Token(self._content(clause.place), "NOUN", "B-LOC", "place")
            place = [adp, Token(p.determiner, "DET", "O", "place"), noun] if p.determiner else [noun, adp]
            tokens = place + tokens if clause.place_first else tokens + place
        return tokens

    def question_tokens(self, clause: Clause, asked: str) -> list[Token]:
        """A wh-question about the ``asked`` role (subj|obj|place): that phrase becomes the wh-word, in place.

        For the place the adposition stays ("... in what?").
        """
        tokens: list[Token] = []
        wh = Token(self.lexicon["what"], "PRON", "O", asked)
        for t in self.clause_tokens(clause):
            if t.role == asked and t.pos != "ADP":
                if not tokens or tokens[-1] is not wh:
                    tokens.append(wh)
            else:
                tokens.append(t)
        tokens.append(Token("?", "PUNCT", "O", "punct"))
        return [self._scripted(t) for t in tokens]

    def word(self, lemma: str) -> str:
        """One lexicon word (a latent lemma) in this language's script."""
        return self._script(self.lexicon[lemma])

    def clause_words(self, clause: Clause) -> list[str]:
        return [t.text for t in self.clause_tokens(clause)]

    def tokens(self, clauses: list[Clause]) -> list[Token]:
        """Tagged tokens (POS, NER, syntactic role) in the language's script."""
        out: list[Token] = []
        for i, clause in enumerate(clauses):
            if i:
                out.append(Token(self.profile.conjunction, "CCONJ", "O", "conj"))
            out.extend(self.clause_tokens(clause))
        out.append(Token(".", "PUNCT", "O", "punct"))
        return [self._scripted(t) for t in out]

    def render(self, clauses: list[Clause], noise: float = 0.0, rng: random.Random | None = None) -> str:
        """Render clauses joined by the conjunction; ``noise`` models MT errors (word drops and swaps)."""
        words: list[str] = []
        for i, clause in enumerate(clauses):
            if i:
                words.append(self.profile.conjunction)
            words.extend(self.clause_words(clause))
        if noise > 0 and rng is not None:
            words = self._add_noise(words, noise, rng)
        return self._script(" ".join(words) + " .")

    def _add_noise(self, words: list[str], noise: float, rng: random.Random) -> list[str]:
        out = []
        vocab = list(self.lexicon.values())
        for w in words:
            r = rng.random()
            if r < noise / 2:
                continue  # dropped word
            out.append(rng.choice(vocab) if r < noise else w)  # mistranslated word
        return out or words
