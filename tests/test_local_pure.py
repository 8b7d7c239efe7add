"""The local model's pure parts, tested without llama.cpp: sampling settings and the loop guard."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys

import pytest

from ipyassistant.server.models.local.loop_guard import LoopGuard
from ipyassistant.server.models.local.sampling import (
    GENERIC,
    KNOWN_MODELS,
    Sampling,
    recommended_sampling,
)

SMOLLM2_METADATA = {"general.basename": "smollm2", "general.name": "Smollm2 135M 8k Lc100K Mix1 Ep2"}


def test_pure_parts_import_without_llama_cpp():
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "import ipyassistant.server.models.local.sampling, ipyassistant.server.models.local.loop_guard\n"
        "import ipyassistant.server.models.local.prompt\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- sampling ------------------------------------------------------------------------------


def test_smollm2_gets_its_model_cards_settings():
    sampling = recommended_sampling(SMOLLM2_METADATA, "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (sampling.temperature, sampling.top_p) == (0.2, 0.9)
    assert sampling.repeat_penalty > 1
    assert sampling == KNOWN_MODELS["smollm2"]


def test_the_file_name_identifies_a_family_when_the_metadata_does_not():
    assert recommended_sampling({}, "qwen2.5-0.5b-instruct-q4_k_m.gguf") == KNOWN_MODELS["qwen2.5"]
    assert recommended_sampling({}, "some-model.gguf") == GENERIC


def test_gguf_sampling_metadata_wins_over_the_table():
    metadata = {**SMOLLM2_METADATA, "general.sampling.temp": "0.6", "general.sampling.top_k": "20.0"}
    sampling = recommended_sampling(metadata, "x.gguf")
    assert (sampling.temperature, sampling.top_k, sampling.top_p) == (0.6, 20, 0.9)
    # A value llama.cpp could not read as a number is ignored, not fatal.
    assert recommended_sampling({"general.sampling.temp": "hot"}) == GENERIC


def test_what_the_run_sets_overrides_and_unset_means_the_models_own():
    base = Sampling(temperature=0.2, top_p=0.9)
    assert base.with_run(None, None) is base
    assert base.with_run(0.0, None) == Sampling(temperature=0.0, top_p=0.9)
    assert base.with_run(None, 0.5).top_p == 0.5
    assert base.generate_kwargs() == {
        "temp": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
    }


# -- the loop guard, on recorded token streams ----------------------------------------------

#: A SmolLM2 reply that looped (token ids of "It's a ball." repeated after a prelude).
PRELUDE = [4154, 28, 3255, 314, 253, 4102, 30, 378, 1493, 5007]
CYCLE = [1326, 506, 253, 2867, 30, 216]


def feed(guard: LoopGuard, tokens: list[int]) -> int | None:
    """The index of the token at which the guard stopped the reply, or None."""
    for index, token in enumerate(tokens):
        if guard.add(token):
            return index
    return None


def test_a_repeated_sentence_is_cut_after_its_first_copy():
    guard = LoopGuard()
    stopped = feed(guard, PRELUDE + CYCLE * 40)
    assert stopped is not None and stopped < len(PRELUDE) + 8 * len(CYCLE)
    assert guard.tokens[: guard.cut] == PRELUDE + CYCLE
    assert guard.releasable() == guard.cut


def test_a_one_token_loop_is_cut_too():
    guard = LoopGuard()
    assert feed(guard, PRELUDE + [9] * 100) is not None
    assert guard.tokens[: guard.cut] == [*PRELUDE, 9]


def test_a_long_block_written_again_is_cut_before_its_second_copy_is_whole():
    """As SmolLM2 wrote a 60-token function twice and stopped partway through the second."""
    block = list(range(500, 560))
    guard = LoopGuard()
    stopped = feed(guard, PRELUDE + block + block[:40])
    assert stopped == len(PRELUDE) + len(block) + 32 - 1
    assert guard.tokens[: guard.cut] == PRELUDE + block


def test_a_phrase_recurring_further_apart_is_not_a_loop():
    phrase = list(range(500, 540))
    between = list(range(700, 800))
    assert feed(LoopGuard(), PRELUDE + phrase + between + phrase) is None


def test_a_cycle_longer_than_the_longest_watched_is_not_a_loop():
    guard = LoopGuard(max_period=8, min_span=8)
    long_cycle = list(range(100, 120))
    assert feed(guard, long_cycle * 5) is None


@pytest.mark.parametrize("seed", range(5))
def test_ordinary_text_never_trips_the_guard(seed):
    # Zipf-like word ids: frequent tokens recur, as in prose, but no run repeats back to back.
    rng = random.Random(seed)
    tokens = rng.choices(range(2000), weights=[1 / (rank + 1) for rank in range(2000)], k=2000)
    guard = LoopGuard()
    assert feed(guard, tokens) is None
    assert guard.cut is None


def test_text_is_released_holdback_tokens_late_and_whole_at_the_end():
    guard = LoopGuard(holdback=16)
    for token in itertools.islice(itertools.count(1000), 40):
        guard.add(token)
    assert guard.releasable() == 24
    assert guard.releasable(final=True) == 40
