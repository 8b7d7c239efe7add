"""Token counts and the windows chunk_text cuts: sizes, overlap, offsets, boundaries."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from ipyassistant.server.retrieval import chunking
from ipyassistant.server.retrieval.chunking import (
    AUTO_MAX_TOKENS,
    AUTO_OVERLAP_TOKENS,
    Chunk,
    chunk_text,
    count_tokens,
)

WORDS = [
    "the", "model", "reads", "every", "file", "and", "keeps", "a", "window", "of", "tokens",
    "around", "each", "fact", "so", "that", "search", "finds", "it", "again", "quickly", "with",
    "keywords", "or", "vectors", "in", "any", "notebook", "on", "this", "machine",
]  # fmt: skip


def prose(paragraphs: int, seed: int = 0) -> str:
    """Paragraphs of capitalised sentences that end with full stops."""
    rng = random.Random(seed)
    return "\n\n".join(
        " ".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "."
            for _ in range(rng.randint(2, 7))
        )
        for _ in range(paragraphs)
    )


def assert_windows_cover(text: str, chunks: list[Chunk]) -> None:
    """Offsets map back to the text, in order, and only whitespace falls between windows."""
    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
    assert chunks[0].start == len(text) - len(text.lstrip())
    assert chunks[-1].end == len(text.rstrip())
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start and before.end < after.end
        assert not text[before.end : after.start].strip()


def test_count_tokens_counts_offline_without_the_start_marker():
    assert count_tokens("") == 0
    assert count_tokens("Hello world.") == 3  # "▁Hello", "▁world", "."
    assert count_tokens(" ".join(["Hello world."] * 100)) == 300


def test_count_tokens_of_a_long_text_equals_one_pass_over_it():
    text = prose(300)
    assert len(text) > 4 * chunking._PIECE_CHARS  # tokenized in pieces
    whole = chunking.tokenizer().encode(text, add_special_tokens=False)
    assert count_tokens(text) == len(whole)


def test_the_tokenizer_is_loaded_once_from_the_wordllama_package():
    assert chunking.tokenizer() is chunking.tokenizer()
    assert chunking.wordllama_file(chunking.TOKENIZER_FILE).parent.parent.name == "wordllama"


def test_auto_is_800_tokens_sharing_400():
    assert (AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS) == (800, 400)
    text = prose(120)
    chunks = chunk_text(text)
    assert chunks == chunk_text(text, 800, 400)
    assert max(chunk.tokens for chunk in chunks) <= 800
    assert min(chunk.tokens for chunk in chunks[:-1]) >= 600  # three quarters full


@pytest.mark.parametrize(("max_tokens", "overlap"), [(800, 400), (100, 50), (300, 0), (4096, 2048)])
def test_windows_hold_at_most_max_tokens(max_tokens: int, overlap: int):
    text = prose(400, seed=max_tokens)
    chunks = chunk_text(text, max_tokens, overlap)
    assert len(chunks) > 1
    assert_windows_cover(text, chunks)
    for chunk in chunks:
        assert chunk.tokens <= max_tokens
        assert count_tokens(chunk.text) <= max_tokens  # counted again, on the chunk alone


@pytest.mark.parametrize(("max_tokens", "overlap"), [(800, 400), (200, 100), (120, 30)])
def test_consecutive_windows_share_the_overlap(max_tokens: int, overlap: int):
    text = prose(200, seed=overlap)
    chunks = chunk_text(text, max_tokens, overlap)
    for before, after in itertools.pairwise(chunks):
        shared = text[after.start : before.end]
        assert before.text.endswith(shared) and after.text.startswith(shared)
        # a quarter of the overlap may be given up to start at a better boundary, and the
        # newline tokens of a paragraph break at either edge are trimmed from the text
        assert overlap - overlap // 4 - 4 <= count_tokens(shared) <= overlap + 1


def test_no_overlap_means_the_windows_tile_the_text():
    text = prose(100)
    chunks = chunk_text(text, 150, 0)
    assert_windows_cover(text, chunks)
    assert all(before.end <= after.start for before, after in itertools.pairwise(chunks))
    assert sum(chunk.tokens for chunk in chunks) == count_tokens(text)


def test_windows_end_at_paragraphs_when_they_can():
    # paragraphs of 25 to 63 tokens: a 300-token window has a break in its last quarter (75)
    text = "\n\n".join(f"Paragraph {i}. " + prose(1, seed=i)[:250].rstrip() for i in range(60))
    chunks = chunk_text(text, 300, 0)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("Paragraph ")
        assert chunk.end == len(text) or text[chunk.end : chunk.end + 2] == "\n\n"


def test_windows_end_and_start_at_sentences_within_a_paragraph():
    text = " ".join(prose(60, seed=3).split("\n\n"))  # one long paragraph
    assert "\n" not in text
    chunks = chunk_text(text, 200, 100)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.endswith(".") or chunk.end == len(text)
        assert chunk.text[0].isupper()


def test_windows_cut_between_words_when_there_are_no_sentences():
    text = " ".join(random.Random(1).choice(WORDS) for _ in range(3000))
    chunks = chunk_text(text, 128, 32)
    assert_windows_cover(text, chunks)
    vocabulary = set(WORDS)
    for chunk in chunks:
        assert set(chunk.text.split()) <= vocabulary  # no word was cut in two


def test_a_text_without_any_boundary_is_still_cut_within_the_limit():
    text = "x" * 20_000
    chunks = chunk_text(text, 100, 20)
    assert_windows_cover(text, chunks)
    assert all(chunk.tokens <= 100 for chunk in chunks)


def test_a_short_text_is_one_chunk():
    text = "\n  A short note about the budget.\n"
    assert chunk_text(text) == [
        Chunk(text="A short note about the budget.", start=3, end=33, tokens=count_tokens(text))
    ]


def test_exactly_max_tokens_is_one_chunk_and_one_more_is_two():
    text = prose(40)
    size = count_tokens(text)
    assert len(chunk_text(text, size, size // 2)) == 1
    assert len(chunk_text(text, size - 1, size // 2)) == 2


def test_blank_text_has_no_chunks():
    assert chunk_text("") == []
    assert chunk_text(" \n\t\n ") == []


def test_chunking_is_deterministic():
    text = prose(150, seed=7)
    first = chunk_text(text, 256, 64)
    chunking.tokenizer.cache_clear()  # a freshly loaded tokenizer cuts the same windows
    assert chunk_text(text, 256, 64) == first


def test_unicode_text_keeps_every_character_whole():
    sentence = "Le café coûte 3 €. 日本語の文章です。Emoji 🎉🚀 are four bytes each! "
    text = sentence * 80
    chunks = chunk_text(text, 40, 0)
    assert_windows_cover(text, chunks)
    assert re.sub(r"\s+", "", "".join(chunk.text for chunk in chunks)) == re.sub(r"\s+", "", text)
    assert all(chunk.tokens <= 40 for chunk in chunks)


def test_emoji_made_of_byte_tokens_are_not_split():
    text = "🎉" * 500  # four byte-fallback tokens each
    chunks = chunk_text(text, 10, 0)
    assert "".join(chunk.text for chunk in chunks) == text
    assert all(chunk.tokens <= 10 for chunk in chunks)


def test_cjk_windows_end_after_a_full_stop():
    text = "".join(f"第{i}章は検索の話です。" for i in range(200))
    chunks = chunk_text(text, 60, 0)
    assert len(chunks) > 3
    assert all(chunk.text.endswith("。") for chunk in chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_impossible_sizes_are_refused(max_tokens: int, overlap: int):
    with pytest.raises(ValueError, match="0 <= overlap < max_tokens"):
        chunk_text("text", max_tokens, overlap)
