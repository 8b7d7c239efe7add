"""A generated corpus for retrieval tests and the benchmark: documents with unique facts and
questions about each one, some of them paraphrased.

Each document describes one invented thing (a company, a river, a dish) with a made-up name.
Half of the questions name it (keywords find those); the other half describe it with synonyms
of the document's words ("bikes" for "bicycles", "started" for "founded") and words that many
documents share (the city), so BM25 alone is not perfect and meaning has to help. Shared
filler sentences make the documents look alike. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Corpus", "Question", "make_corpus"]

_PLACES = [
    "Oslo",
    "Lisbon",
    "Quito",
    "Hanoi",
    "Nairobi",
    "Tallinn",
    "Perth",
    "Cusco",
    "Porto",
    "Bergen",
    "Kyoto",
    "Dakar",
]
_PRODUCTS = [
    ("bicycles", "bikes"),
    ("automobiles", "cars"),
    ("sofas", "couches"),
    ("trousers", "pants"),
    ("spectacles", "eyeglasses"),
    ("timepieces", "watches"),
    ("footwear", "shoes"),
    ("boats", "ships"),
    ("loudspeakers", "speakers"),
    ("perfume", "fragrance"),
    ("medicine", "drugs"),
    ("aircraft", "airplanes"),
]
_FISH = [
    ("trout", "trout fishing"),
    ("salmon runs", "salmon"),
    ("pike", "large predatory fish"),
    ("eels", "eel catches"),
    ("carp", "carp angling"),
    ("sturgeon", "caviar fish"),
]
_INGREDIENTS = [
    ("lamb", "mutton"),
    ("chickpeas", "garbanzo beans"),
    ("shrimp", "prawns"),
    ("aubergine", "eggplant"),
    ("courgettes", "zucchini"),
    ("beef", "steak"),
    ("mushrooms", "fungi"),
    ("cabbage", "greens"),
]
_METHODS = [
    ("slowly braising", "stewing"),
    ("grilling", "barbecuing"),
    ("deep-frying", "frying in oil"),
    ("steaming", "cooking over vapour"),
    ("roasting", "baking in an oven"),
]
_FILLER = [
    "Records from the early years are incomplete, and historians still disagree about details.",
    "Visitors often remark on the surrounding landscape and the mild climate.",
    "A small museum nearby keeps photographs and documents from that period.",
    "Several newspapers wrote about it at the time, mostly with enthusiasm.",
    "The local council has published a short guide for tourists.",
    "Its reputation grew steadily over the following decades.",
    "Many families in the area have a story connected to it.",
    "Scholars have written a number of papers on its history.",
    "It appears in a few novels and at least one popular song.",
    "A festival celebrating it is held every summer.",
    "Critics have sometimes questioned how much of the legend is true.",
    "Guided walks start from the main square twice a day.",
]
_SYLLABLES = [
    "bra",
    "cor",
    "dun",
    "fel",
    "gor",
    "hal",
    "jun",
    "kel",
    "lor",
    "mav",
    "nor",
    "pel",
    "quin",
    "ros",
    "sel",
    "tor",
    "val",
    "wen",
    "zar",
    "vix",
]


@dataclass(frozen=True)
class Question:
    """A question, the document that answers it, and whether it names the document's subject."""

    text: str
    doc: int
    named: bool


@dataclass(frozen=True)
class Corpus:
    documents: list[str]
    questions: list[Question]


def _name(rng: random.Random, used: set[str]) -> str:
    # Three syllables give 8,000 names; larger corpora (the benchmark's) take four.
    syllables = 3 if len(used) < 6_000 else 4
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()
        if name not in used:
            used.add(name)
            return name


def _company(rng: random.Random, name: str, combos: set[tuple[str, ...]]) -> tuple[str, list[str]]:
    place, product = rng.choice(_PLACES), rng.choice(_PRODUCTS)
    founder = f"{rng.choice(['Anna', 'Ivo', 'Mara', 'Teo', 'Lena', 'Oskar'])} {_name(rng, set())}"
    year = rng.randint(1820, 1990)
    doc = (
        f"{name} is a manufacturer based in {place}. Founded in {year} by {founder}, the firm "
        f"builds {product[0]} that are sold across the region."
    )
    questions = [f"Who started the {name} company?"]
    if ("company", place, product[0]) not in combos:
        combos.add(("company", place, product[0]))
        questions.append(f"Which business in {place} produces {product[1]}?")
    return doc, questions


def _river(rng: random.Random, name: str, combos: set[tuple[str, ...]]) -> tuple[str, list[str]]:
    place, fish = rng.choice(_PLACES), rng.choice(_FISH)
    mountain = f"Mount {_name(rng, set())}"
    doc = (
        f"The {name} River rises on {mountain} and flows {rng.randint(40, 900)} kilometres "
        f"before reaching the sea near {place}. Anglers prize it for its {fish[0]}."
    )
    questions = [f"Where is the source of the {name}?"]
    if ("river", place, fish[0]) not in combos:
        combos.add(("river", place, fish[0]))
        questions.append(f"Which stream ending close to {place} do fishermen visit for {fish[1]}?")
    return doc, questions


def _dish(rng: random.Random, name: str, combos: set[tuple[str, ...]]) -> tuple[str, list[str]]:
    place, food, method = rng.choice(_PLACES), rng.choice(_INGREDIENTS), rng.choice(_METHODS)
    doc = (
        f"{name} is a traditional dish from the countryside around {place}, made by "
        f"{method[0]} {food[0]} with garlic and local spices."
    )
    questions = [f"How do cooks prepare {name}?"]
    if ("dish", place, food[0], method[0]) not in combos:
        combos.add(("dish", place, food[0], method[0]))
        questions.append(f"What recipe from {place} involves {method[1]} {food[1]}?")
    return doc, questions


def make_corpus(documents: int, *, seed: int = 14, filler: int = 4) -> Corpus:
    """``documents`` documents (one fact sheet each, padded with ``filler`` shared sentences)."""
    rng = random.Random(seed)
    used: set[str] = set()
    combos: set[tuple[str, ...]] = set()
    docs: list[str] = []
    questions: list[Question] = []
    kinds = (_company, _river, _dish)
    for i in range(documents):
        body, asked = kinds[i % len(kinds)](rng, _name(rng, used), combos)
        pad = rng.sample(_FILLER, filler)
        docs.append(" ".join([*pad[: filler // 2], body, *pad[filler // 2 :]]))
        questions.extend(Question(q, i, named=j == 0) for j, q in enumerate(asked))
    return Corpus(docs, questions)
