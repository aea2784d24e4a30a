"""Read which task type a description asks for: embeddings against exemplars, cue words as a second signal.

Each task type in the knowledge has short generic exemplars ("find and localise objects in images with
bounding boxes"). The description and the exemplars are embedded with a sentence model; a task type
scores the mean cosine similarity of its ``TOP_EXEMPLARS`` best-matching exemplars, plus ``CUE_BONUS``
per cue word of the type or of its modality found in the text (at most ``MAX_CUES``; a word one typo
away from a cue counts). The scores, with a "no known ML task" reading at ``NO_TASK_SCORE``, go through
a softmax: a reading's confidence is its share, so it falls both when another type scores close (a
small margin) and when the best score is barely above that of no task at all. The softmax is sharper
(``TEMPERATURE_DATA_NAMED``) when the text names the kind of data of the best reading ("photos", "CSV")
than when it does not (``TEMPERATURE``): "classify these" may be about photos, texts or tables.

The constants were chosen on the labelled set in ``tests/data/encoder_descriptions.yaml``: each
temperature minimises the negative log-likelihood of the right readings among the descriptions of its
kind there, so that a confidence of 0.8 means about 4 in 5 such readings are right *on that set*
(fitted there, so it flatters; the bench prints the calibration on a holdout set written after the
tuning too).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .knowledge import Knowledge, TaskTypeInfo
from .text_embedding import TextEmbedder, shared_embedder

__all__ = [
    "CUE_BONUS",
    "NO_TASK_SCORE",
    "NO_TASK_SIMILARITY",
    "TEMPERATURE",
    "TEMPERATURE_DATA_NAMED",
    "TOP_EXEMPLARS",
    "Reading",
    "TextReading",
    "prepare",
    "read_task_type",
]

TOP_EXEMPLARS = 5
"""A type scores the mean similarity of this many best exemplars: one lucky exemplar is not enough."""

CUE_BONUS = 0.04
"""Score per cue word found; cosine similarities of related sentences differ by about 0.05 to 0.2."""

MAX_CUES = 3

NO_TASK_SCORE = 0.25
"""The score of reading the text as no ML task: chit-chat scores 0.1 to 0.3 against the exemplars."""

NO_TASK_SIMILARITY = 0.30
"""A text with no cue and no ML word is refused as no ML task unless one exemplar is at least this close.

Chit-chat ("hello there", "thanks, that's all") comes to 0.15-0.30 of its closest exemplar; terse ML
goals without a cue word ("is a job advert discriminatory or fine") from 0.32. Refusing is for
nothing ML-related at all: a text in between is read, with a low confidence, not refused.
"""

TEMPERATURE = 0.035
"""Softmax temperature over scores: a margin of 0.1 makes one reading about 17 times as likely."""

TEMPERATURE_DATA_NAMED = 0.02
"""The temperature when the text names the best reading's kind of data: 97 % of those were right on
the labelled (tuning) set."""


@dataclass(frozen=True)
class Reading:
    """One way of reading a description: a task type, how likely (0..1), and what it rests on."""

    task_type: TaskTypeInfo
    confidence: float
    similarity: float  # mean cosine similarity of the best exemplars
    exemplar: str  # the closest exemplar
    cues: tuple[str, ...]  # cue words found in the text, as the knowledge spells them

    def why(self) -> str:
        parts = [f"closest example {self.exemplar!r} (similarity {self.similarity:.2f})"]
        if self.cues:
            parts.append(f"the words {', '.join(repr(c) for c in self.cues)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TextReading:
    """Every task type considered for a text, most likely first, and the share left to "no ML task".

    ``signs`` are the cue and ML words found in the text, of any task type; ``closest`` the cosine
    similarity of the one exemplar closest to it.
    """

    readings: tuple[Reading, ...]
    no_task: float
    signs: tuple[str, ...]
    closest: float

    @property
    def best(self) -> Reading:
        return self.readings[0]

    @property
    def is_task(self) -> bool:
        """Whether the text speaks of ML at all: an ML or cue word, or an exemplar close enough."""
        return bool(self.readings) and (bool(self.signs) or self.closest >= NO_TASK_SIMILARITY)


def read_task_type(
    text: str, knowledge: Knowledge, *, modality: str = "", embedder: TextEmbedder | None = None
) -> TextReading:
    """How ``text`` reads as each task type of ``knowledge`` (of ``modality`` only, when given)."""
    embedder = embedder or shared_embedder()
    exemplars = prepare(knowledge, embedder)
    query = embedder.embed([text])[0]
    words = _words(text)
    known = embedder.vocabulary()
    scored = []
    for task_type in knowledge.task_types.values():
        if modality and task_type.modality != modality:
            continue
        rows, vectors = exemplars[task_type.name]
        similarities = vectors @ query
        order = np.argsort(-similarities)
        similarity = float(similarities[order[:TOP_EXEMPLARS]].mean())
        cues = _cues_found(words, (*task_type.cues, *knowledge.modality_cues[task_type.modality]), known)
        score = similarity + CUE_BONUS * min(len(cues), MAX_CUES)
        scored.append((score, task_type, similarity, rows[int(order[0])], cues))
    scores = np.array([s[0] for s in scored] + [NO_TASK_SCORE])
    best_modality = scored[int(np.argmax(scores[:-1]))][1].modality if scored else ""
    named = bool(_cues_found(words, knowledge.modality_cues.get(best_modality, ()), known))
    shares = np.exp((scores - scores.max()) / (TEMPERATURE_DATA_NAMED if named else TEMPERATURE))
    shares /= shares.sum()
    readings = sorted(
        (
            Reading(task_type=t, confidence=float(p), similarity=sim, exemplar=ex, cues=cues)
            for (_, t, sim, ex, cues), p in zip(scored, shares[:-1], strict=True)
        ),
        key=lambda r: r.confidence,
        reverse=True,
    )
    signs = _cues_found(words, knowledge.ml_words, known) + tuple(c for r in readings for c in r.cues)
    closest = max((float((vectors @ query).max()) for _, vectors in exemplars.values()), default=0.0)
    return TextReading(
        readings=tuple(readings), no_task=float(shares[-1]), signs=tuple(dict.fromkeys(signs)), closest=closest
    )


# ---------------------------------------------------------------- exemplar embeddings

Exemplars = dict[str, tuple[tuple[str, ...], np.ndarray]]
"""Per task type name: its exemplars and their embeddings, one row each."""

_cache: dict[tuple[object, ...], Exemplars] = {}
_cache_lock = threading.Lock()


def prepare(knowledge: Knowledge, embedder: TextEmbedder | None = None) -> Exemplars:
    """The exemplars of each task type and their embeddings, computed once per knowledge and embedder.

    A node calls this at start-up so that its first request does not wait for the model.
    """
    embedder = embedder or shared_embedder()
    key = (id(embedder), tuple((name, t.exemplars) for name, t in knowledge.task_types.items()))
    with _cache_lock:
        if key not in _cache:
            texts = [e for t in knowledge.task_types.values() for e in t.exemplars]
            vectors = embedder.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
            table, start = {}, 0
            for name, t in knowledge.task_types.items():
                if not t.exemplars:
                    raise ValueError(f"task type {name} has no exemplars to compare descriptions with")
                table[name] = (t.exemplars, vectors[start : start + len(t.exemplars)])
                start += len(t.exemplars)
            _cache[key] = table
        return _cache[key]


# ---------------------------------------------------------------- cue words


def _cues_found(words: Sequence[str], cues: Sequence[str], known: frozenset[str]) -> tuple[str, ...]:
    """The cues in ``words``: whole words in a row; a misspelt long word also matches (see ``_same_word``).
    Time linear in the text: each cue is looked for where its first word is, not at every word."""
    index = _WordIndex(words)
    return tuple(dict.fromkeys(cue for cue in cues if _contains(index, _cue_words(cue), known)))


@lru_cache(maxsize=4096)
def _cue_words(cue: str) -> tuple[str, ...]:
    return tuple(_words(cue))


class _WordIndex:
    """Where each distinct word of a text is, and its distinct words by first letter and length."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = words
        self.at: dict[str, list[int]] = {}
        for i, word in enumerate(words):
            self.at.setdefault(word, []).append(i)
        self.by_shape: dict[tuple[str, int], list[str]] = {}
        for word in self.at:
            self.by_shape.setdefault((word[:1], len(word)), []).append(word)

    def starts(self, cue: str, known: frozenset[str]) -> list[int]:
        """The positions of the words that ``_same_word`` takes for ``cue``, in order."""
        found = list(self.at.get(cue, ()))
        if len(cue) >= 6:
            for length in (len(cue) - 1, len(cue), len(cue) + 1):
                for word in self.by_shape.get((cue[:1], length), ()):
                    if word != cue and _same_word(word, cue, known):
                        found += self.at[word]
        return sorted(found)


def _contains(index: _WordIndex, phrase: Sequence[str], known: frozenset[str]) -> bool:
    n, words = len(phrase), index.words
    return n > 0 and any(
        i + n <= len(words) and all(_same_word(w, c, known) for w, c in zip(words[i + 1 : i + n], phrase[1:], strict=True))
        for i in index.starts(phrase[0], known)
    )


def _same_word(word: str, cue: str, known: frozenset[str]) -> bool:
    """Equal; or, for a word of 6+ letters that is no word of the model's vocabulary (so "defect" never
    passes for "detect"), one edit from the cue (a swap of neighbours counts as one) with the same first letter.
    """
    if word == cue:
        return True
    if len(cue) < 6 or word[:1] != cue[:1] or abs(len(word) - len(cue)) > 1 or word in known:
        return False
    return _edit_distance(word, cue) <= 1


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _words(text: str) -> list[str]:
    """Lower-case words in singular, so "photos" matches the cue "photo" and "boxes" the cue "box"."""
    return [_singular(w) for w in re.findall(r"[a-z0-9]+", text.casefold())]


def _singular(word: str) -> str:
    """English plural rules, roughly; applied to cues and text alike, so a miss on an odd word is harmless."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
