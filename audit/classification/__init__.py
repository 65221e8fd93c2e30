"""Local request classification: category, relevance to the project's purpose, sensitivity.

Everything runs in this process, in memory: no network, no disk writes, no logging of text.

    from audit.classification import classify, prompt_text_for_classification
    result = classify(prompt_text_for_classification(body), project_purpose=project.purpose)
"""

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from audit.classification.detectors import LEVELS, detect
from audit.classification.features import SparseVector, cosine, normalize
from audit.classification.model import LexicalModel, default_model
from audit.classification.relevance import relevance_score
from audit.classification.taxonomy import (
    DEFAULT_TAXONOMY,
    Category,
    Taxonomy,
)

__all__ = [
    "DEFAULT_TAXONOMY",
    "LEVELS",
    "Category",
    "Classification",
    "Taxonomy",
    "classify",
    "prompt_text_for_classification",
]

# Weight of the trained model against example similarity for default categories.
MODEL_WEIGHT = 0.7
# Temperature of the softmax over cosine similarities to category centroids.
SIMILARITY_TEMPERATURE = 0.05


@dataclass(frozen=True)
class Classification:
    category: str  # a taxonomy key, e.g. "software_development"
    category_confidence: float
    relevance: float | None  # 0..1 fit to the project's purpose; None without a purpose text
    sensitivity: str  # "public" | "internal" | "confidential" | "restricted"
    detectors: tuple[str, ...]  # names of the detectors that fired; never the matched text


def _signature(taxonomy: Taxonomy) -> tuple:
    """What matters for classification: keys, enabled flags, descriptions, examples (not labels)."""
    return tuple((c.key, c.enabled, c.description, c.examples) for c in taxonomy.categories)


_DEFAULT_SIGNATURE = _signature(DEFAULT_TAXONOMY)


def _is_default(taxonomy: Taxonomy) -> bool:
    return taxonomy is DEFAULT_TAXONOMY or _signature(taxonomy) == _DEFAULT_SIGNATURE


@lru_cache(maxsize=64)
def _centroids(model_id: int, taxonomy: Taxonomy) -> dict[str, SparseVector]:
    """Similarity centroid of each enabled category: trained centroid + description + examples."""
    model = _MODEL_REGISTRY[model_id]
    centroids: dict[str, SparseVector] = {}
    for category in taxonomy.enabled():
        texts = [category.description, *category.examples]
        vectors = [model.vectorize_open(text) for text in texts if text.strip()]
        combined: dict[str, float] = {}
        for vector in vectors:
            for feature, value in vector.items():
                combined[feature] = combined.get(feature, 0.0) + value / max(len(vectors), 1)
        trained = model.centroids.get(category.key)
        if trained:
            # The trained centroid stands for many prompts; tenant text is added at equal weight.
            for feature, value in trained.items():
                combined[feature] = combined.get(feature, 0.0) + value
        centroids[category.key] = normalize(combined)
    return centroids


_MODEL_REGISTRY: dict[int, LexicalModel] = {}


def category_distribution(
    model: LexicalModel, text: str, probs: dict[str, float], taxonomy: Taxonomy
) -> dict[str, float]:
    """Probability of each enabled category of the taxonomy, given the model's probabilities."""
    enabled = taxonomy.enabled()
    if not enabled:
        return {}
    if _is_default(taxonomy):
        return probs
    _MODEL_REGISTRY.setdefault(id(model), model)
    centroids = _centroids(id(model), taxonomy)
    vector = model.vectorize_open(text)
    sims = {key: cosine(vector, centroid) for key, centroid in centroids.items()}
    top = max(sims.values())
    exps = {key: math.exp((sim - top) / SIMILARITY_TEMPERATURE) for key, sim in sims.items()}
    total = sum(exps.values())
    similarity = {key: value / total for key, value in exps.items()}
    blended = {
        c.key: (
            MODEL_WEIGHT * probs[c.key] + (1 - MODEL_WEIGHT) * similarity[c.key]
            if c.key in probs
            else similarity[c.key]
        )
        for c in enabled
    }
    norm = sum(blended.values()) or 1.0
    return {key: value / norm for key, value in blended.items()}


def classify(
    text: str, *, project_purpose: str = "", taxonomy: Taxonomy | None = None
) -> Classification:
    """Classify one prompt in memory. Never logs, stores or sends the text anywhere."""
    model = default_model()
    detectors, sensitivity = detect(text)
    vector = model.vectorize(text)
    probs = model.probabilities(vector)
    distribution = category_distribution(model, text, probs, taxonomy or DEFAULT_TAXONOMY)
    if distribution:
        category, confidence = max(distribution.items(), key=lambda item: item[1])
    else:
        category, confidence = "", 0.0
    relevance = relevance_score(model, vector, probs, project_purpose)
    return Classification(
        category=category,
        category_confidence=round(confidence, 4),
        relevance=relevance,
        sensitivity=sensitivity,
        detectors=detectors,
    )


def _text_of(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text" and isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif block.get("type") == "tool_result":
                    _text_of(block.get("content"), parts)


def prompt_text_for_classification(body: dict) -> str:
    """System prompt and message text of a Messages API request body (text blocks only)."""
    parts: list[str] = []
    if isinstance(body, dict):
        _text_of(body.get("system"), parts)
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    _text_of(message.get("content"), parts)
    return "\n\n".join(part for part in parts if part)
