"""Searching vector stores: keyword (BM25) and dense rankings, fused by reciprocal rank.

For each query there are two rankings of the stores' chunks, each of the best
:data:`CANDIDATES` (or more when more results are asked for):

- keyword: SQLite FTS5's BM25 (PostgreSQL: ``ts_rank`` weighed by IDF, BM25's shape) over the
  query's words, OR-ed so that a chunk with some of them still ranks;
- dense: cosine similarity between the query's embedding (made with each store's own
  embedder) and the chunks', by brute force over a contiguous float32 matrix per store that is
  cached in memory and reloaded when the store's version token changes (``index.py``).

Filters are applied inside each ranking, before it is cut, so a chunk the filter rejects
never takes a candidate's place. Reciprocal rank fusion (k = 60) adds ``1 / (60 + rank)``
over the rankings a chunk appears in; the **score** is that sum divided by its largest
possible value (first in every ranking, counting one that found nothing, e.g. a keyword ranking
for words no chunk has), so it lies in [0, 1] and is 1 only for a chunk every ranking put first.
With ``ranker="none"`` only the dense ranking is used and the score is the cosine similarity,
clipped to [0, 1] (the best over several queries).
``score_threshold`` and ``max_num_results`` apply to the fused list.

Brute force rather than a vector extension, by measurement (``bench/file_search.py``): sqlite-vec's
``vec0`` scans every vector too, and a query took 7 to 19 times as long as one matrix product
at 1k, 10k and 100k chunks (0.2 ms against 1.6 ms at 10k, 2.2 ms against 42 ms at 100k), so
there is no crossover; and the stdlib ``sqlite3`` of many Python builds cannot load
extensions at all. What the matrix costs is memory (1 KB a chunk) and a first query that
loads it (about 85 ms at 10k chunks).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import db
from .embedders import get_embedder
from .filters import Predicate, compile_filter
from .index import store_version

__all__ = ["CANDIDATES", "KEYWORD_ONLY", "RANKERS", "RRF_K", "Hit", "fts5_match", "search"]

#: Reciprocal rank fusion's constant (Cormack et al. 2009): damps the weight of the top ranks.
RRF_K = 60
#: How deep each ranking goes before fusion (at least; more when more results are asked for).
CANDIDATES = 100
#: The ``ranking_options.ranker`` values: "none" is the dense ranking alone, the others hybrid.
RANKERS = ("auto", "default-2024-11-15", "default_2024_08_21", "none")
#: One more ranker, not in the API: the keyword ranking alone (scored like a fused one), the
#: baseline that tests and the benchmark measure hybrid search against.
KEYWORD_ONLY = "keyword"
# At most this many query words go to the keyword index (a pasted page stays a cheap query).
_MAX_TERMS = 64
# Vectors kept in memory across stores, least recently used dropped first.
_CACHE_BYTES = 512 * 1024 * 1024
# Words too common to tell chunks apart: BM25 gives them almost no weight anyway, but an OR
# over them would make the keyword index score nearly every chunk.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)

_chunks = db.vector_store_chunks


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk of a file, its score in [0, 1] and its file's attributes."""

    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    score: float
    attributes: dict[str, Any]


@dataclass(frozen=True)
class _Vectors:
    """A store's chunk embeddings as one matrix, with the rows' keys, as of ``token``."""

    token: str | None
    matrix: np.ndarray  # (n, dim) float32, unit rows
    seqs: np.ndarray  # (n,) the rows' chunk seq
    file_rows: np.ndarray  # (n,) index into files
    files: list[str]
    attributes: list[dict[str, Any] | None]  # per file


_cache: OrderedDict[str, _Vectors] = OrderedDict()
_cache_lock = threading.Lock()


async def _vectors(conn: AsyncConnection, vector_store_id: str) -> _Vectors:
    """The store's vectors, from the cache while its version token is unchanged."""
    token = await store_version(conn, vector_store_id)
    with _cache_lock:
        cached = _cache.get(vector_store_id)
        if cached is not None and cached.token == token:
            _cache.move_to_end(vector_store_id)
            return cached
    rows = (
        await conn.execute(
            sa.select(_chunks.c.seq, _chunks.c.file_id, _chunks.c.embedding)
            .where(_chunks.c.vector_store_id == vector_store_id)
            .order_by(_chunks.c.seq)
        )
    ).all()
    # While a store is re-indexed with another embedder it holds vectors of two sizes: keep the
    # newest chunks' size (the embedder the store now names).
    width = len(rows[-1][2]) if rows else 0
    rows = [r for r in rows if len(r[2]) == width]
    files: dict[str, int] = {}
    file_rows = np.fromiter(
        (files.setdefault(r[1], len(files)) for r in rows), dtype=np.int32, count=len(rows)
    )
    attributes_of = dict(
        (
            await conn.execute(
                sa.select(_chunks.c.file_id, _chunks.c.attributes).where(
                    _chunks.c.vector_store_id == vector_store_id, _chunks.c.chunk_index == 0
                )
            )
        ).all()
    )
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
    vectors = _Vectors(
        token=token,
        matrix=matrix.reshape(len(rows), width // 4) if rows else np.zeros((0, 0), np.float32),
        seqs=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        file_rows=file_rows,
        files=list(files),
        attributes=[attributes_of.get(f) for f in files],
    )
    with _cache_lock:
        _cache[vector_store_id] = vectors
        _cache.move_to_end(vector_store_id)
        total = sum(v.matrix.nbytes for v in _cache.values())
        while total > _CACHE_BYTES and len(_cache) > 1:
            total -= _cache.popitem(last=False)[1].matrix.nbytes
    return vectors


def _match_terms(query: str) -> list[str]:
    """The query's distinct words, lower-cased, common words left out unless nothing else."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    return ([w for w in words if w not in _STOPWORDS] or words)[:_MAX_TERMS]


def fts5_match(query: str) -> str | None:
    """A safe FTS5 MATCH expression for free text: each word quoted, the words OR-ed.

    User text never reaches MATCH as syntax (no operators, columns or prefixes); None when
    the text has no words.
    """
    terms = _match_terms(query)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms) if terms else None


def _scope(allowed: Mapping[str, list[str] | None]) -> sa.ColumnElement[bool]:
    """The chunks a ranking may return: per store, all of its files (None) or the listed ones."""
    whole = [s for s, files in allowed.items() if files is None]
    parts: list[sa.ColumnElement[bool]] = []
    if whole:
        parts.append(_chunks.c.vector_store_id.in_(whole))
    for store, files in allowed.items():
        if files:
            parts.append(sa.and_(_chunks.c.vector_store_id == store, _chunks.c.file_id.in_(files)))
    return sa.or_(*parts)


async def _keyword_ranking(
    conn: AsyncConnection, query: str, allowed: Mapping[str, list[str] | None], depth: int
) -> list[int]:
    """The seqs of the best ``depth`` chunks for ``query`` by the database's keyword ranking."""
    if conn.dialect.name == "postgresql":
        return await _postgres_keyword_ranking(conn, _match_terms(query), allowed, depth)
    expression = fts5_match(query)
    if expression is None:
        return []
    fts = sa.table("vector_store_chunks_fts", sa.column("rowid"))
    statement = (
        sa.select(_chunks.c.seq)
        .select_from(fts.join(_chunks, _chunks.c.seq == fts.c.rowid))
        .where(sa.literal_column("vector_store_chunks_fts").op("MATCH")(expression))
        .where(_scope(allowed))
        .order_by(sa.literal_column("vector_store_chunks_fts.rank"), _chunks.c.seq)
    )
    return list((await conn.execute(statement.limit(depth))).scalars())


async def _postgres_keyword_ranking(
    conn: AsyncConnection, terms: list[str], allowed: Mapping[str, list[str] | None], depth: int
) -> list[int]:
    """BM25's shape on PostgreSQL: each word's ``ts_rank`` (its frequency, saturating, over the
    chunk's length) weighed by the word's IDF among the chunks in scope, summed.

    PostgreSQL's own ranks have no IDF: a common word counts as much as a rare name, and a
    question's rare name is what finds its chunk (the keyword recall fell from 0.78 to 0.65).
    """
    if not terms:
        return []
    # One query per word (plainto_tsquery: user text is never syntax); a word PostgreSQL drops
    # (a stop word of its own) matches nothing and costs nothing.
    english: sa.ColumnElement[Any] = sa.literal_column("'english'::regconfig")
    words = [sa.func.plainto_tsquery(english, term) for term in terms]
    vector: sa.ColumnElement[Any] = sa.literal_column("vector_store_chunks.text_search")
    scope = _scope(allowed)
    total = (await conn.execute(sa.select(sa.func.count()).where(scope))).scalar() or 0
    counts = (
        await conn.execute(
            sa.select(*(sa.func.count().filter(vector.op("@@")(word)) for word in words)).where(
                scope, sa.or_(*(vector.op("@@")(word) for word in words))
            )
        )
    ).one()
    found = [(word, n) for word, n in zip(words, counts, strict=True) if n]
    if not found:
        return []
    score = sum(
        (
            math.log(1 + (total - n + 0.5) / (n + 0.5)) * sa.func.ts_rank(vector, word, 1)
            for word, n in found
        ),
        sa.literal(0.0),
    )
    statement = (
        sa.select(_chunks.c.seq)
        .where(scope, sa.or_(*(vector.op("@@")(word) for word, _ in found)))
        .order_by(score.desc(), _chunks.c.seq)
        .limit(depth)
    )
    return list((await conn.execute(statement)).scalars())


def _dense_ranking(
    stores: Iterable[tuple[_Vectors, np.ndarray | None, np.ndarray]], depth: int
) -> list[tuple[int, float]]:
    """(seq, cosine) of the best ``depth`` chunks over the stores, each with its query vector
    and its allowed-row mask (None: every row)."""
    seqs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for vectors, mask, query in stores:
        if vectors.matrix.shape[0] == 0 or vectors.matrix.shape[1] != query.shape[0]:
            continue
        matrix, keys = vectors.matrix, vectors.seqs
        if mask is not None:
            matrix, keys = matrix[mask], keys[mask]
        similarity = matrix @ query
        if similarity.shape[0] > depth:
            top = np.argpartition(-similarity, depth - 1)[:depth]
            similarity, keys = similarity[top], keys[top]
        seqs.append(keys)
        scores.append(similarity)
    if not seqs:
        return []
    all_seqs, all_scores = np.concatenate(seqs), np.concatenate(scores)
    order = np.lexsort((all_seqs, -all_scores))[:depth]
    return [(int(all_seqs[i]), float(all_scores[i])) for i in order]


def _fuse(rankings: Sequence[Sequence[int]]) -> dict[int, float]:
    """Reciprocal rank fusion, normalised by the best possible sum (see the module docstring)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, seq in enumerate(ranking, start=1):
            fused[seq] = fused.get(seq, 0.0) + 1.0 / (RRF_K + rank)
    # Empty rankings count too: a query no chunk shares a word with scores at most 0.5.
    best = max(len(rankings), 1) / (RRF_K + 1)
    return {seq: min(score / best, 1.0) for seq, score in fused.items()}


def _check(queries: Sequence[str], max_num_results: int, ranker: str, threshold: float) -> None:
    if isinstance(queries, str):
        raise ValueError("queries must be a list of strings, not one string")
    if max_num_results < 1:
        raise ValueError(f"max_num_results must be at least 1, not {max_num_results}")
    if ranker not in (*RANKERS, KEYWORD_ONLY):
        raise ValueError(f"ranker {ranker!r} is not one of {', '.join(RANKERS)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"score_threshold must be between 0 and 1, not {threshold}")


async def search(
    conn: AsyncConnection,
    vector_store_ids: Sequence[str],
    queries: Sequence[str],
    *,
    max_num_results: int = 10,
    filters: dict[str, Any] | None = None,
    ranker: str = "auto",
    score_threshold: float = 0.0,
) -> list[Hit]:
    """The best chunks of the stores for the queries, best first (see the module docstring).

    ``ranker`` is one of :data:`RANKERS`, or :data:`KEYWORD_ONLY`. Stores that do not exist are
    skipped. An invalid filter, ranker or limit raises :class:`ValueError` naming it.
    """
    _check(queries, max_num_results, ranker, score_threshold)
    return await _search(
        conn,
        vector_store_ids,
        queries,
        max_num_results=max_num_results,
        predicate=compile_filter(filters),
        score_threshold=score_threshold,
        keyword=ranker != "none",
        dense=ranker != KEYWORD_ONLY,
    )


async def _search(
    conn: AsyncConnection,
    vector_store_ids: Sequence[str],
    queries: Sequence[str],
    *,
    max_num_results: int,
    predicate: Predicate | None,
    score_threshold: float,
    keyword: bool,
    dense: bool,
) -> list[Hit]:
    queries = [q for q in queries if q.strip()]
    stores = dict(
        (
            await conn.execute(
                sa.select(db.vector_stores.c.id, db.vector_stores.c.embedder).where(
                    db.vector_stores.c.id.in_(list(dict.fromkeys(vector_store_ids)))
                )
            )
        ).all()
    )
    if not queries or not stores:
        return []
    depth = max(CANDIDATES, 2 * max_num_results)
    vectors = {store: await _vectors(conn, store) for store in stores}
    # Which files of each store the filter lets through: None = all (no filter to apply).
    allowed: dict[str, list[str] | None] = {}
    masks: dict[str, np.ndarray | None] = {}
    for store, v in vectors.items():
        if predicate is None:
            allowed[store], masks[store] = None, None
            continue
        passing = [i for i, a in enumerate(v.attributes) if predicate(a)]
        if passing:
            allowed[store] = [v.files[i] for i in passing]
            masks[store] = np.isin(v.file_rows, np.asarray(passing, dtype=np.int32))
    if not allowed:
        return []

    rankings: list[list[int]] = []
    cosines: dict[int, float] = {}
    if dense:
        by_embedder: dict[str, list[str]] = {}
        for store in allowed:
            by_embedder.setdefault(stores[store], []).append(store)
        embedded = {
            name: await get_embedder(name).embed(queries) for name in by_embedder
        }  # one call per embedder embeds every query
        for q in range(len(queries)):
            ranking = _dense_ranking(
                (
                    (vectors[store], masks[store], embedded[name][q])
                    for name, members in by_embedder.items()
                    for store in members
                ),
                depth,
            )
            rankings.append([seq for seq, _ in ranking])
            for seq, cosine in ranking:
                cosines[seq] = max(cosines.get(seq, -1.0), cosine)
    matched: dict[int, int] = {}  # each chunk's best place in a keyword ranking
    if keyword:
        for query in queries:
            found = await _keyword_ranking(conn, query, allowed, depth)
            rankings.append(found)
            for rank, seq in enumerate(found):
                matched[seq] = min(matched.get(seq, rank), rank)

    if keyword:
        scores = _fuse(rankings)
    else:
        scores = {seq: min(max(c, 0.0), 1.0) for seq, c in cosines.items()}
    # Fusion ties whenever the rankings disagree (the first of each scores alike): a chunk that
    # holds the query's words goes first, as the stronger evidence for a needle in a long file
    # (a whole chunk's mean vector hardly moves for one sentence); then the closer vector.
    best = sorted(
        ((score, seq) for seq, score in scores.items() if score >= score_threshold),
        key=lambda pair: (
            -pair[0],
            matched.get(pair[1], depth),
            -cosines.get(pair[1], -1.0),
            pair[1],
        ),
    )[:max_num_results]
    return await _hits(conn, best)


async def _hits(conn: AsyncConnection, best: list[tuple[float, int]]) -> list[Hit]:
    if not best:
        return []
    rows = {
        row.seq: row
        for row in await conn.execute(
            sa.select(
                _chunks.c.seq,
                _chunks.c.vector_store_id,
                _chunks.c.file_id,
                _chunks.c.chunk_index,
                _chunks.c.text,
                _chunks.c.attributes,
            ).where(_chunks.c.seq.in_([seq for _, seq in best]))
        )
    }
    return [
        Hit(
            vector_store_id=row.vector_store_id,
            file_id=row.file_id,
            chunk_index=row.chunk_index,
            text=row.text,
            score=score,
            attributes=dict(row.attributes or {}),
        )
        for score, seq in best
        if (row := rows.get(seq)) is not None
    ]
