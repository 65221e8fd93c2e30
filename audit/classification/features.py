"""Lexical features: word uni/bigrams and character n-grams (per word), sublinear TF-IDF, L2.

Pure Python, no third-party packages: a prompt becomes a sparse vector {feature: weight}.
Only a bounded window of a long prompt is read (its head and tail), which keeps the cost per
prompt flat; the head holds the instruction in most prompts and the tail in "... summarise the
above" prompts.
"""

import itertools
import math
import re
import unicodedata
from collections import Counter

HEAD_CHARS = 2000
TAIL_CHARS = 600
LEAD_WORDS = 8

_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

SparseVector = dict[str, float]


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " \n " + text[-TAIL_CHARS:]


def raw_features(text: str) -> Counter[str]:
    """Counts of the features of a text (before weighting)."""
    normalized = _DIGITS.sub("0", unicodedata.normalize("NFKC", window(text)).lower())
    words = _WORD.findall(normalized)
    counts: Counter[str] = Counter(words)
    counts.update([f"{a} {b}" for a, b in itertools.pairwise(words)])
    # Most prompts open with the instruction ("Translate ...", "Summarize ..."): mark lead words.
    lead = words[:LEAD_WORDS]
    counts.update(["^" + word for word in lead])
    counts.update([f"^{a} {b}" for a, b in itertools.pairwise(lead)])
    grams: list[str] = []
    for word in set(words):
        if len(word) > 30:
            continue
        padded = f" {word} "
        size = len(padded)
        grams.extend(padded[i : i + 3] for i in range(size - 2))
        grams.extend(padded[i : i + 4] for i in range(size - 3))
        if _CJK.search(word):  # no spaces between Japanese/Chinese words: add single characters
            grams.extend(word)
    counts.update("#" + gram for gram in grams)
    return counts


def tfidf(counts: Counter[str], idf: dict[str, float]) -> SparseVector:
    """Sublinear TF times IDF over known features, L2-normalised."""
    vector = {
        feature: (1.0 + math.log(count)) * weight
        for feature, count in counts.items()
        if (weight := idf.get(feature)) is not None
    }
    norm = math.sqrt(sum(value * value for value in vector.values()))
    if norm == 0.0:
        return {}
    return {feature: value / norm for feature, value in vector.items()}


def cosine(a: SparseVector, b: SparseVector) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(value * b.get(feature, 0.0) for feature, value in a.items())


def normalize(vector: SparseVector) -> SparseVector:
    norm = math.sqrt(sum(value * value for value in vector.values()))
    if norm == 0.0:
        return {}
    return {feature: value / norm for feature, value in vector.items()}
