"""Near-copy detection for the augment gates: character n-gram TF-IDF cosine, numpy only.

Why character n-grams: Korean words inflect (조사, 어미), so word tokens miss copies that change a
particle; character trigrams over text stripped of spaces and punctuation catch them, and need no
tokenizer or model. IDF comes from the reference corpus (test and train questions), so boilerplate
shared by every CSAT stem ("적절한 것은?") weighs little and a copied passage or choice list weighs a lot.

An index is a sparse matrix in CSR-by-gram form (numpy arrays), so finding the nearest of N
references costs one gather per query gram, not N comparisons. Embedding similarity (when an
embedder is available) is plain cosine on vectors someone else computed: `cosine_nearest`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

N = 3
_STRIP = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str | None) -> str:
    """NFC, lower case, no spaces or punctuation: what two copies of one question share."""
    return _STRIP.sub("", unicodedata.normalize("NFC", text or "").lower())


def grams(text: str | None, n: int = N) -> Counter:
    s = normalise(text)
    if len(s) <= n:
        return Counter([s]) if s else Counter()
    return Counter(s[i:i + n] for i in range(len(s) - n + 1))


def question_text(q: dict[str, Any]) -> str:
    """The text compared: passage, stem, <보기> and choices (what a reader would call a copy)."""
    parts = [q.get("paragraph") or q.get("passage") or "", q.get("question") or "", q.get("extra") or ""]
    parts += [str(c) for c in (q.get("choices") or [])]
    return "\n".join(p for p in parts if p)


@dataclass
class Nearest:
    index: int  # position in the index's documents; -1 when nothing overlaps
    similarity: float


class Vocabulary:
    """Gram ids and IDF weights learnt from a reference corpus; grams it never saw get the top IDF."""

    def __init__(self, docs: Sequence[Counter]):
        df: Counter = Counter()
        for d in docs:
            df.update(d.keys())
        self.ids = {g: i for i, g in enumerate(df)}
        n = len(docs)
        self.idf = np.array([math.log((n + 1) / (df[g] + 1)) + 1.0 for g in df], dtype=np.float64)
        self.unseen_idf = math.log(n + 1) + 1.0

    def vector(self, counts: Counter) -> tuple[dict[int, float], dict[str, float], float]:
        """(known gram id -> weight, unseen gram -> weight, norm) for one document."""
        known, unseen = {}, {}
        for g, c in counts.items():
            i = self.ids.get(g)
            if i is None:
                unseen[g] = c * self.unseen_idf
            else:
                known[i] = c * self.idf[i]
        norm = math.sqrt(sum(w * w for w in known.values()) + sum(w * w for w in unseen.values()))
        return known, unseen, norm


class NgramIndex:
    """Documents to search, as TF-IDF vectors over one vocabulary, for nearest-neighbour cosine."""

    def __init__(self, texts: Sequence[str], vocab: Vocabulary | None = None,
                 counts: Sequence[Counter] | None = None):
        counts = list(counts) if counts is not None else [grams(t) for t in texts]
        self.vocab = vocab or Vocabulary(counts)
        self.size = len(counts)
        rows, cols, vals = [], [], []
        self.extra: list[dict[str, float]] = []  # grams outside the vocabulary, per document
        norms = np.zeros(self.size)
        for d, c in enumerate(counts):
            known, unseen, norm = self.vocab.vector(c)
            rows += known.keys()
            cols += [d] * len(known)
            vals += known.values()
            self.extra.append(unseen)
            norms[d] = norm
        self.norms = np.where(norms > 0, norms, 1.0)
        order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
        gram_ids = np.asarray(rows, dtype=np.int64)[order]
        self.docs = np.asarray(cols, dtype=np.int64)[order]
        self.vals = np.asarray(vals, dtype=np.float64)[order]
        self.indptr = np.searchsorted(gram_ids, np.arange(len(self.vocab.idf) + 1))
        self.has_extra = any(self.extra)

    def similarities(self, counts: Counter) -> np.ndarray:
        """Cosine of one document (gram counts) to every indexed document."""
        scores = np.zeros(self.size)
        if not self.size:
            return scores
        known, unseen, norm = self.vocab.vector(counts)
        if norm == 0:
            return scores
        if known:
            ids = np.fromiter(known.keys(), dtype=np.int64)
            weights = np.fromiter(known.values(), dtype=np.float64)
            starts, ends = self.indptr[ids], self.indptr[ids + 1]
            lengths = ends - starts
            if lengths.sum():
                take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends) if e > s])
                scores += np.bincount(self.docs[take], weights=self.vals[take] * np.repeat(weights, lengths),
                                      minlength=self.size)
        if unseen and self.has_extra:
            for d, ex in enumerate(self.extra):
                if ex:
                    scores[d] += sum(w * ex[g] for g, w in unseen.items() if g in ex)
        return scores / (self.norms * norm)

    def nearest(self, counts: Counter, mask: np.ndarray | None = None) -> Nearest:
        """The most similar indexed document (only where mask is True, when given)."""
        sims = self.similarities(counts)
        if mask is not None:
            sims = np.where(mask, sims, -1.0)
        if not self.size or sims.max() <= 0:
            return Nearest(-1, 0.0)
        i = int(sims.argmax())
        return Nearest(i, round(float(sims[i]), 4))


def cosine_nearest(queries: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query vector, (index of the nearest reference, its cosine). Empty refs: (-1, 0)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    refs = np.atleast_2d(np.asarray(refs, dtype=np.float64))
    if refs.size == 0 or queries.size == 0:
        return np.full(len(queries), -1), np.zeros(len(queries))
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    r = refs / np.maximum(np.linalg.norm(refs, axis=1, keepdims=True), 1e-12)
    sims = q @ r.T
    idx = sims.argmax(axis=1)
    return idx, sims[np.arange(len(q)), idx]


def hangul_share(text: str | None) -> float:
    """Share of Hangul among the letters of a text (digits, symbols and spaces don't count)."""
    letters = [ch for ch in unicodedata.normalize("NFC", text or "") if ch.isalpha()]
    if not letters:
        return 0.0
    hangul = sum(1 for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff"
                 or "\u3130" <= ch <= "\u318f")
    return hangul / len(letters)
