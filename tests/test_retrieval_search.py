"""Retrieval: the embedders, the chunk index and hybrid search, on a corpus the test generates.

The corpus (tests/_retrieval_corpus.py) has one fact sheet per document and questions about
each, half of them paraphrased, so keyword search alone is good but not perfect. Recall@5
thresholds sit a few points under what the code measures, so a real regression fails them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import sqlalchemy as sa

from _retrieval_corpus import Corpus, make_corpus
from ipyassistant.server import db
from ipyassistant.server.retrieval import index
from ipyassistant.server.retrieval import search as search_module
from ipyassistant.server.retrieval.embedders import (
    DEFAULT_EMBEDDER,
    OpenAIEmbedder,
    WordLlamaEmbedder,
    get_embedder,
)
from ipyassistant.server.retrieval.filters import compile_filter
from ipyassistant.server.retrieval.search import KEYWORD_ONLY, Hit, fts5_match, search
from ipyassistant.server.store import Store

KINDS = ("company", "river", "dish")  # the order make_corpus cycles through


# The index and search on SQLite (FTS5) and on PostgreSQL (tsvector), see conftest.py.
pytestmark = pytest.mark.both_databases


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = Store.from_url(database_url)
    await s.migrate()
    yield s
    await s.close()


async def _new_store(store: Store, store_id: str, embedder: str = DEFAULT_EMBEDDER) -> None:
    async with store.tx() as tx:
        await tx.conn.execute(
            sa.insert(db.vector_stores).values(
                id=store_id, created_at=0, embedder=embedder, data={}
            )
        )


async def _add(
    store: Store, store_id: str, file_id: str, texts: Sequence[str], **attrs: Any
) -> None:
    vectors = await get_embedder().embed(texts)
    async with store.tx() as tx:
        await index.delete_file_chunks(tx.conn, store_id, file_id)
        await index.add_chunks(tx.conn, store_id, file_id, texts, vectors, attrs or None)


async def _load(store: Store, corpus: Corpus, store_id: str = "vs_corpus") -> None:
    """Each document a file of one chunk, with attributes kind / n / even."""
    await _new_store(store, store_id)
    vectors = await get_embedder().embed(corpus.documents)
    async with store.tx() as tx:
        for i, doc in enumerate(corpus.documents):
            attrs = {"kind": KINDS[i % 3], "n": i, "even": i % 2 == 0}
            await index.add_chunks(tx.conn, store_id, f"file-{i}", [doc], vectors[i : i + 1], attrs)


async def _search(store: Store, ids: Sequence[str], query: str, **options: Any) -> list[Hit]:
    async with store.read() as tx:
        return await search(tx.conn, ids, [query], **options)


async def _recall_at_5(store: Store, corpus: Corpus, mode: str) -> float:
    found = 0
    async with store.read() as tx:
        for q in corpus.questions:
            ranker = {"keyword": KEYWORD_ONLY, "dense": "none", "hybrid": "auto"}[mode]
            hits = await search(tx.conn, ["vs_corpus"], [q.text], max_num_results=5, ranker=ranker)
            found += f"file-{q.doc}" in [h.file_id for h in hits]
    return found / len(corpus.questions)


# -- recall -------------------------------------------------------------------------------


async def test_hybrid_recall_beats_keyword_and_dense_alone(store: Store) -> None:
    corpus = make_corpus(300)
    await _load(store, corpus)
    keyword = await _recall_at_5(store, corpus, "keyword")
    dense = await _recall_at_5(store, corpus, "dense")
    hybrid = await _recall_at_5(store, corpus, "hybrid")
    # Measured: keyword 0.78, dense 0.76, hybrid 0.86 (300 documents, 450 questions).
    assert 0.72 <= keyword < 0.95, keyword  # BM25 alone is good, and the paraphrases beat it
    assert dense >= 0.70, dense
    assert hybrid >= 0.82, hybrid
    assert hybrid >= max(keyword, dense)


async def test_keyword_search_finds_named_subjects(store: Store) -> None:
    corpus = make_corpus(120)
    await _load(store, corpus)
    named = [q for q in corpus.questions if q.named]
    async with store.read() as tx:
        for q in named:
            hits = await search(
                tx.conn, ["vs_corpus"], [q.text], max_num_results=5, ranker=KEYWORD_ONLY
            )
            assert f"file-{q.doc}" in [h.file_id for h in hits], q.text


# -- scores, threshold, ranker ------------------------------------------------------------


async def test_a_chunk_holding_the_querys_words_wins_a_fusion_tie(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A needle in a long file: its chunk's mean vector hardly moves for one sentence, so the
    # dense ranking puts chunks about the same things in other words first, and the first of
    # each ranking fuse to equal scores. The one that holds the query's words goes first.
    monkeypatch.setattr(search_module, "CANDIDATES", 1)  # rankings two deep: a tie for sure
    await _new_store(store, "vs_tie")
    paraphrases = [
        "Beacon towers on rocky coasts: keepers mended lanterns and lenses so ships saw them.",
        "A coastal beacon keeper fixed the lantern and polished the lens every evening.",
        "Keepers of seaside beacons mend their lanterns before storms reach the coast.",
    ]
    for i, text in enumerate(paraphrases):
        await _add(store, "vs_tie", f"file-beacon-{i}", [text])
    ledger = " ".join(f"Record {i}: district {i % 97} shipped {i * 7 % 1000} crates." for i in range(60))
    needle = f"{ledger} The lighthouse keeper repaired the great lamp in 1998. {ledger}"
    await _add(store, "vs_tie", "file-ledger", [needle])
    query = "Who repaired the great lamp of the lighthouse?"
    dense = await _search(store, ["vs_tie"], query, ranker="none", max_num_results=4)
    assert dense[-1].file_id == "file-ledger"  # the premise: last by meaning, ...
    keyword = await _search(store, ["vs_tie"], query, ranker=KEYWORD_ONLY)
    assert [h.file_id for h in keyword] == ["file-ledger"]  # ... the only one with the words
    hits = await _search(store, ["vs_tie"], query, max_num_results=1)
    assert hits[0].file_id == "file-ledger"


async def test_scores_are_normalised_sorted_and_thresholded(store: Store) -> None:
    corpus = make_corpus(60)
    await _load(store, corpus)
    question = corpus.questions[0]
    hits = await _search(store, ["vs_corpus"], question.text, max_num_results=50)
    assert len(hits) == 50
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # A named question: its document is at or near the top of both rankings (1.0 = first in both).
    assert hits[0].file_id == f"file-{question.doc}" and hits[0].score > 0.95
    # The threshold applies after fusion, then the limit.
    kept = await _search(
        store, ["vs_corpus"], question.text, max_num_results=50, score_threshold=0.6
    )
    assert kept == [h for h in hits if h.score >= 0.6]
    top = await _search(store, ["vs_corpus"], question.text, max_num_results=3, score_threshold=0.6)
    assert top == kept[:3]
    # No chunk has these words: the (empty) keyword ranking still counts, so at most 0.5.
    assert max(h.score for h in await _search(store, ["vs_corpus"], "zzzz qqqq")) <= 0.5


async def test_ranker_none_is_the_dense_ranking_with_cosine_scores(store: Store) -> None:
    corpus = make_corpus(60)
    await _load(store, corpus)
    query = corpus.questions[1].text
    hits = await _search(store, ["vs_corpus"], query, max_num_results=10, ranker="none")
    embedder = get_embedder()
    q = (await embedder.embed([query]))[0]
    docs = await embedder.embed(corpus.documents)
    cosine = docs @ q
    expected = sorted(range(len(docs)), key=lambda i: (-cosine[i], i))[:10]
    assert [h.file_id for h in hits] == [f"file-{i}" for i in expected]
    for h in hits:
        assert h.score == pytest.approx(max(float(cosine[int(h.file_id[5:])]), 0.0), abs=1e-5)
    with pytest.raises(ValueError, match="ranker 'bm25'"):
        await _search(store, ["vs_corpus"], query, ranker="bm25")


async def test_several_queries_and_odd_text_are_safe(store: Store) -> None:
    corpus = make_corpus(30)
    await _load(store, corpus)
    for text in [
        '"unbalanced',
        "NEAR(a b)",
        "text:foo",
        "a* OR -b AND NOT c",
        "{x} ^y",
        "ÜBER café",
    ]:
        await _search(store, ["vs_corpus"], text)
    assert fts5_match('say "hi" AND bye') == '"say" OR "hi" OR "bye"'
    assert fts5_match("the of") == '"the" OR "of"'  # only common words: kept
    assert fts5_match("?!") is None
    a, b = corpus.questions[0], corpus.questions[2]
    async with store.read() as tx:
        hits = await search(tx.conn, ["vs_corpus"], [a.text, b.text], max_num_results=5)
    assert {f"file-{a.doc}", f"file-{b.doc}"} <= {h.file_id for h in hits}


# -- filters ------------------------------------------------------------------------------


async def test_filters_apply_inside_each_ranking(store: Store) -> None:
    corpus = make_corpus(90)
    await _load(store, corpus)
    company_question = corpus.questions[0].text  # about document 0, a company
    rivers = {"type": "eq", "key": "kind", "value": "river"}
    hits = await _search(store, ["vs_corpus"], company_question, max_num_results=20, filters=rivers)
    # Filtered-out chunks take no slot: all 20 results are rivers, though the best are companies.
    assert len(hits) == 20 and {h.attributes["kind"] for h in hits} == {"river"}
    nested = {
        "type": "or",
        "filters": [
            {"type": "and", "filters": [rivers, {"type": "lt", "key": "n", "value": 10}]},
            {"type": "in", "key": "n", "value": [42, 45]},
        ],
    }
    hits = await _search(store, ["vs_corpus"], company_question, max_num_results=50, filters=nested)
    assert sorted(h.attributes["n"] for h in hits) == [1, 4, 7, 42, 45]
    none = {"type": "eq", "key": "kind", "value": "volcano"}
    assert await _search(store, ["vs_corpus"], company_question, filters=none) == []


def test_filter_semantics() -> None:
    attrs = {"s": "b", "n": 3, "f": 2.5, "t": True, "d": "2024-05-01"}

    def check(spec: dict[str, Any]) -> bool:
        predicate = compile_filter(spec)
        assert predicate is not None
        return predicate(attrs)

    assert check({"type": "eq", "key": "s", "value": "b"})
    assert check({"type": "ne", "key": "s", "value": "c"})
    assert check({"type": "gt", "key": "n", "value": 2.9}) and not check(
        {"type": "gt", "key": "n", "value": 3}
    )
    assert check({"type": "gte", "key": "n", "value": 3}) and check(
        {"type": "lte", "key": "f", "value": 2.5}
    )
    assert check({"type": "lt", "key": "d", "value": "2024-06-01"})  # ISO dates order as strings
    assert not check({"type": "eq", "key": "t", "value": 1})  # a boolean is not a number
    assert check({"type": "eq", "key": "t", "value": True})
    assert check({"type": "in", "key": "n", "value": [1, 3.0]}) and check(
        {"type": "nin", "key": "s", "value": ["a"]}
    )
    assert not check({"type": "gt", "key": "s", "value": 1})  # other kinds never compare
    assert not check({"type": "eq", "key": "missing", "value": "x"})
    assert check({"type": "ne", "key": "missing", "value": "x"})
    assert check({"type": "nin", "key": "missing", "value": ["x"]})
    assert compile_filter(None) is None
    predicate = compile_filter({"type": "eq", "key": "s", "value": "b"})
    assert predicate is not None and not predicate(None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "like", "key": "a", "value": 1}, r"filters\.type: 'like' is not a filter type"),
        ({"type": "eq", "value": 1}, r"filters\.key"),
        ({"type": "eq", "key": "a", "value": [1]}, r"filters\.value: 'eq' compares with"),
        ({"type": "gt", "key": "a", "value": True}, r"not booleans"),
        ({"type": "in", "key": "a", "value": "x"}, r"non-empty list"),
        ({"type": "in", "key": "a", "value": [{"x": 1}]}, r"filters\.value\[0\]"),
        ({"type": "and", "filters": []}, r"filters\.filters: an 'and' filter needs"),
        ({"type": "or", "filters": [{"type": "eq", "key": "a"}]}, r"filters\.filters\[0\]\.value"),
        ("eq", r"a filter must be an object"),
    ],
)
async def test_invalid_filters_raise_value_error(store: Store, spec: Any, message: str) -> None:
    await _new_store(store, "vs_empty")
    with pytest.raises(ValueError, match=message):
        await _search(store, ["vs_empty"], "anything", filters=spec)


# -- the index: writes, cache invalidation, several stores --------------------------------


async def test_cached_vectors_follow_adds_deletes_and_attribute_changes(store: Store) -> None:
    await _new_store(store, "vs_a")
    await _add(store, "vs_a", "file-x", ["The lighthouse keeper feeds seven grey cats."], tag="x")
    hits = await _search(store, ["vs_a"], "who feeds cats at the lighthouse", ranker="none")
    assert [h.file_id for h in hits] == ["file-x"]
    # Added after the store's vectors were cached: found by both rankings.
    await _add(store, "vs_a", "file-y", ["A glassblower in Murano sells blue vases."], tag="y")
    for ranker in ("none", "auto"):
        hits = await _search(store, ["vs_a"], "glassblower vases", ranker=ranker)
        assert hits[0].file_id == "file-y"
    # Attributes changed: filters see the new ones.
    async with store.tx() as tx:
        await index.set_attributes(tx.conn, "vs_a", "file-y", {"tag": "z"})
    tag_z = {"type": "eq", "key": "tag", "value": "z"}
    assert [h.file_id for h in await _search(store, ["vs_a"], "vases", filters=tag_z)] == ["file-y"]
    # Deleted: gone from both rankings (the keyword index follows the rows).
    async with store.tx() as tx:
        await index.delete_file_chunks(tx.conn, "vs_a", "file-y")
    assert [h.file_id for h in await _search(store, ["vs_a"], "glassblower vases")] == ["file-x"]
    async with store.read() as tx:
        assert await search(tx.conn, ["vs_a"], ["glassblower"], ranker=KEYWORD_ONLY) == []
    # Re-indexed (every chunk deleted, then the same number added back): never the stale cache.
    async with store.tx() as tx:
        await index.delete_store_chunks(tx.conn, "vs_a")
    assert await _search(store, ["vs_a"], "cats") == []
    await _add(store, "vs_a", "file-w", ["Walruses sleep on the ice floes of the north."])
    assert [
        h.file_id for h in await _search(store, ["vs_a"], "lighthouse cats", ranker="none")
    ] == ["file-w"]


async def test_several_stores_are_searched_together_and_kept_apart(store: Store) -> None:
    await _new_store(store, "vs_a")
    await _new_store(store, "vs_b", embedder="wordllama:l2_supercat:128")
    await _add(store, "vs_a", "file-1", ["Copper kettles are polished with lemon and salt."])
    vectors = await get_embedder("wordllama:l2_supercat:128").embed(
        ["Tin roofs rust in salty air."]
    )
    async with store.tx() as tx:
        await index.add_chunks(
            tx.conn, "vs_b", "file-2", ["Tin roofs rust in salty air."], vectors, None
        )
    hits = await _search(store, ["vs_a", "vs_b", "vs_missing"], "salt", max_num_results=5)
    assert {(h.vector_store_id, h.file_id) for h in hits} == {
        ("vs_a", "file-1"),
        ("vs_b", "file-2"),
    }
    only_b = await _search(store, ["vs_b"], "copper kettles rust")
    assert [(h.vector_store_id, h.file_id, h.chunk_index) for h in only_b] == [
        ("vs_b", "file-2", 0)
    ]
    assert only_b[0].attributes == {}


async def test_file_chunks_and_usage_bytes(store: Store) -> None:
    await _new_store(store, "vs_a")
    texts = ["première partie", "second part", "third"]
    await _add(store, "vs_a", "file-1", texts)
    await _add(store, "vs_a", "file-2", ["other"])
    async with store.read() as tx:
        assert await index.file_chunks(tx.conn, "vs_a", "file-1") == texts
        one = await index.usage_bytes(tx.conn, "vs_a", "file-1")
        assert one == sum(len(t.encode()) for t in texts) + 3 * 256 * 4
        assert await index.usage_bytes(tx.conn, "vs_a") == one + len(b"other") + 256 * 4
        assert await index.usage_bytes(tx.conn, "vs_nothing") == 0
    with pytest.raises(ValueError, match="2 chunk texts but 1 embeddings"):
        async with store.tx() as tx:
            await index.add_chunks(tx.conn, "vs_a", "f", ["a", "b"], np.zeros((1, 256)), None)


# -- embedders ----------------------------------------------------------------------------


async def test_wordllama_embedder_is_offline_normalised_and_named() -> None:
    default = get_embedder()
    assert default.name == DEFAULT_EMBEDDER and default is get_embedder("wordllama")
    assert isinstance(default, WordLlamaEmbedder)
    vectors = await default.embed(["a cat on a mat", "", "dogs"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), [1, 0, 1], atol=1e-5)
    small = await get_embedder("wordllama:l2_supercat:64").embed(["a cat on a mat"])
    assert small.shape == (1, 64)
    for bad, message in [
        ("sbert:x", "Unknown embedding model 'sbert:x'"),
        ("wordllama:l2_supercat:100", "must be one of"),
        ("openai:", "need a model"),
    ]:
        with pytest.raises(ValueError, match=message):
            get_embedder(bad)


def test_embedding_model_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYASSISTANT_EMBEDDING_MODEL", "openai:nomic-embed-text")
    embedder = get_embedder()
    assert embedder.name == "openai:nomic-embed-text" and embedder is get_embedder(None)


async def test_openai_embedder_batches_and_normalises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ipyassistant.server.retrieval.embedders._OPENAI_BATCH", 2)
    requests: list[dict[str, Any]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [3.0, 4.0 + i]}
            for i, _ in enumerate(body["input"])
        ]
        return httpx.Response(
            200, json={"object": "list", "data": data[::-1], "model": body["model"]}
        )

    embedder = OpenAIEmbedder("nomic-embed-text")
    embedder._client = openai.AsyncOpenAI(
        base_url="http://embeddings.test/v1",
        api_key="k",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)),
    )
    vectors = await embedder.embed(["a", "b", ""])
    assert [r["input"] for r in requests] == [["a", "b"], [" "]]
    assert embedder.dimensions == 2 and vectors.dtype == np.float32
    assert np.allclose(vectors, [[0.6, 0.8], [3 / 34**0.5, 5 / 34**0.5], [0.6, 0.8]])
