"""File search: retrieval quality, indexing throughput, query latency, and the vector index.

Four parts, all on a corpus generated here (tests/_retrieval_corpus.py), figures from one run:

1. quality: recall@5 and MRR of keyword-only (BM25), dense-only and hybrid (reciprocal rank
   fusion) search, for each wordllama width (64, 128, 256), with hybrid's ratio to the better
   of the two alone (the target is >= 1);
2. indexing: chunks/s to embed and store 1k and 10k chunks, in files of 10 chunks, one
   transaction per file (documents padded with filler sentences to ~150 tokens; real chunks
   are up to 800, so embedding takes longer there);
3. latency: query p50/p99 (ms) of hybrid, keyword-only and dense-only search at 1k and 10k
   chunks with the vectors cached, and the first query's (which loads the cache), against the
   target p50 <= 50 ms at 10k;
4. the vector index: brute force (one float32 matrix product) against sqlite-vec's ``vec0``
   KNN at 1k/10k/100k random 256-d vectors. sqlite-vec needs a ``sqlite3`` that can load
   extensions, which many Python builds lack; ``--vec-python`` names one that can (it needs
   only the standard library: its part runs in a child process).

    python bench/file_search.py [--docs 600] [--vec-python /usr/bin/python3]
"""

from __future__ import annotations

import argparse
import array
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VEC_SIZES = (1_000, 10_000, 100_000)
DIM = 256
QUERIES = 50
VEC_QUERIES = 200  # the vector part is cheap per query: more of them steady the median
CHUNKS_PER_FILE = 10  # indexing and latency: files of several chunks, as real files are


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- sqlite-vec (child process: standard library only) -------------------------------------


def _vec_child(vec_path: str, sizes: list[int]) -> None:
    """Print {size: {"load_s", "p50_ms"}} for sqlite-vec KNN (k=10) over random vectors."""
    import sqlite3

    rng = random.Random(14)
    out = {}
    for n in sizes:
        db = sqlite3.connect(":memory:")
        db.enable_load_extension(True)
        db.load_extension(vec_path)
        db.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIM}])")
        started = time.perf_counter()
        rows = (
            (i, array.array("f", [rng.gauss(0, 1) for _ in range(DIM)]).tobytes()) for i in range(n)
        )
        db.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", rows)
        load = time.perf_counter() - started
        times = []
        for _ in range(VEC_QUERIES):
            query = array.array("f", [rng.gauss(0, 1) for _ in range(DIM)]).tobytes()
            t = time.perf_counter()
            db.execute(
                "SELECT rowid, distance FROM v WHERE embedding MATCH ? AND k = 10", (query,)
            ).fetchall()
            times.append((time.perf_counter() - t) * 1000)
        out[n] = {"load_s": load, "p50_ms": statistics.median(times), "best_ms": min(times)}
        db.close()
    print(json.dumps(out))


def _vector_index(vec_python: str | None) -> None:
    import numpy as np
    import sqlite_vec

    print("\n## vector index: brute force (numpy) vs sqlite-vec vec0, k=10, 256-d, ms per query")
    rng = np.random.default_rng(14)
    brute: dict[int, float] = {}
    fastest: dict[int, float] = {}
    for n in VEC_SIZES:
        matrix = rng.standard_normal((n, DIM), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        times = []
        for _ in range(VEC_QUERIES):
            q = rng.standard_normal(DIM, dtype=np.float32)
            t = time.perf_counter()
            scores = matrix @ q
            top = np.argpartition(-scores, 99)[:100]
            top[np.argsort(-scores[top])]
            times.append((time.perf_counter() - t) * 1000)
        brute[n] = statistics.median(times)
        fastest[n] = min(times)
    python = vec_python or sys.executable
    child = subprocess.run(
        [python, __file__, "--vec-child", sqlite_vec.loadable_path(), *map(str, VEC_SIZES)],
        capture_output=True,
        text=True,
    )
    vec: dict[str, Any] = json.loads(child.stdout) if child.returncode == 0 else {}
    if not vec:
        reason = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "no output"
        print(f"sqlite-vec not measured with {python}: {reason}")
    for n in VEC_SIZES:
        line = f"{n:>7} chunks: brute force p50 {brute[n]:7.2f} (best {fastest[n]:6.2f})"
        if str(n) in vec:
            v = vec[str(n)]
            line += (
                f" | sqlite-vec p50 {v['p50_ms']:7.2f} (best {v['best_ms']:6.2f}; p50"
                f" x{v['p50_ms'] / brute[n]:.1f} of brute force), insert {v['load_s']:.1f} s"
            )
        print(line)


# -- quality, indexing, latency (the real search code) -------------------------------------


async def _fill(
    store: Any, store_id: str, embedder: Any, docs: list[str], per_file: int = 1
) -> float:
    """Embed and store ``docs`` as files of ``per_file`` chunks (a transaction per file, as the
    indexer writes them); chunks/s. Chunk i is chunk ``i % per_file`` of file ``i // per_file``."""
    import sqlalchemy as sa

    from ipyassistant.server import db
    from ipyassistant.server.retrieval import index

    async with store.tx() as tx:
        await tx.conn.execute(
            sa.insert(db.vector_stores).values(
                id=store_id, created_at=0, embedder=embedder.name, data={}
            )
        )
    started = time.perf_counter()
    for start in range(0, len(docs), per_file):
        texts = docs[start : start + per_file]
        vectors = await embedder.embed(texts)
        async with store.tx() as tx:
            file_id = f"file-{start // per_file}"
            await index.delete_file_chunks(tx.conn, store_id, file_id)
            await index.add_chunks(tx.conn, store_id, file_id, texts, vectors, {"n": start})
    return len(docs) / (time.perf_counter() - started)


async def _quality(store: Any, docs: int) -> None:
    from _retrieval_corpus import make_corpus
    from ipyassistant.server.retrieval.embedders import get_embedder
    from ipyassistant.server.retrieval.search import KEYWORD_ONLY, search

    corpus = make_corpus(docs)
    print(f"## quality: {docs} documents, {len(corpus.questions)} questions (recall@5, MRR)")
    for dim in (64, 128, 256):
        embedder = get_embedder(f"wordllama:l2_supercat:{dim}")
        await _fill(store, f"vs_q{dim}", embedder, corpus.documents)
        results = {}
        for mode, ranker in (("keyword", KEYWORD_ONLY), ("dense", "none"), ("hybrid", "auto")):
            recall = mrr = 0.0
            async with store.read() as tx:
                for q in corpus.questions:
                    hits = await search(
                        tx.conn, [f"vs_q{dim}"], [q.text], max_num_results=5, ranker=ranker
                    )
                    files = [h.file_id for h in hits]
                    if f"file-{q.doc}" in files:
                        recall += 1
                        mrr += 1 / (files.index(f"file-{q.doc}") + 1)
            results[mode] = (recall / len(corpus.questions), mrr / len(corpus.questions))
        best_alone = max(results["keyword"][0], results["dense"][0])
        print(
            f"{embedder.name:>26}: "
            + " | ".join(f"{m} {r:.3f} / {m_:.3f}" for m, (r, m_) in results.items())
            + f" | hybrid / best alone x{results['hybrid'][0] / best_alone:.3f}"
        )


async def _latency(store: Any) -> None:
    from _retrieval_corpus import make_corpus
    from ipyassistant.server.retrieval import search as search_module
    from ipyassistant.server.retrieval.embedders import get_embedder
    from ipyassistant.server.retrieval.search import KEYWORD_ONLY, search

    embedder = get_embedder()
    print(f"\n## indexing and latency ({embedder.name}; ms: p50 / p99 over {QUERIES} queries)")
    for n in (1_000, 10_000):
        corpus = make_corpus(n, seed=n, filler=10)
        rate = await _fill(store, f"vs_{n}", embedder, corpus.documents, CHUNKS_PER_FILE)
        questions = [q.text for q in corpus.questions[:QUERIES]]
        search_module._cache.clear()
        async with store.read() as tx:
            t = time.perf_counter()
            await search(tx.conn, [f"vs_{n}"], [questions[0]])
            cold = (time.perf_counter() - t) * 1000
        line = f"{n:>6} chunks: indexing {rate:6.0f} chunks/s | first query {cold:6.1f}"
        for mode, ranker in (("hybrid", "auto"), ("keyword", KEYWORD_ONLY), ("dense", "none")):
            times = []
            for question in questions:
                async with store.read() as tx:
                    t = time.perf_counter()
                    await search(tx.conn, [f"vs_{n}"], [question], ranker=ranker)
                    times.append((time.perf_counter() - t) * 1000)
            p50, p99 = statistics.median(times), _percentile(times, 99)
            line += f" | {mode} {p50:5.1f} / {p99:5.1f}"
            if mode == "hybrid" and n == 10_000:
                line += f" (target 50: x{p50 / 50:.2f})"
        print(line)


async def _run(docs: int) -> None:
    from ipyassistant.server.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}")
        await store.migrate()
        try:
            await _quality(store, docs)
            await _latency(store)
        finally:
            await store.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--vec-child":
        _vec_child(sys.argv[2], [int(n) for n in sys.argv[3:]])
        return
    import asyncio

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=600, help="documents in the quality corpus")
    parser.add_argument("--vec-python", help="a Python whose sqlite3 can load extensions")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    asyncio.run(_run(args.docs))
    _vector_index(args.vec_python)


if __name__ == "__main__":
    main()
