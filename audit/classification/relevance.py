"""Relevance: how well a prompt fits the purpose text of the project it is billed to (0..1).

Three signals, blended by a logistic calibration fitted on the training split:
- lexical similarity of the prompt to the purpose (TF-IDF cosine);
- category agreement: the probability that prompt and purpose fall in the same category;
- the probability that the prompt is personal (non-work) use.
"""

import math
from functools import lru_cache

from audit.classification.features import SparseVector, cosine
from audit.classification.model import LexicalModel

PERSONAL = "personal"


def relevance_features(
    prompt_vector: SparseVector,
    prompt_probs: dict[str, float],
    purpose_vector: SparseVector,
    purpose_probs: dict[str, float],
) -> list[float]:
    agreement = sum(prompt_probs[key] * purpose_probs.get(key, 0.0) for key in prompt_probs)
    return [
        math.sqrt(max(cosine(prompt_vector, purpose_vector), 0.0)),
        agreement,
        prompt_probs.get(PERSONAL, 0.0) * (1.0 - purpose_probs.get(PERSONAL, 0.0)),
    ]


def calibrate(model: LexicalModel, features: list[float]) -> float:
    z = model.relevance_intercept + sum(
        c * x for c, x in zip(model.relevance_coef, features, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


@lru_cache(maxsize=512)
def _purpose(model_id: int, purpose: str) -> tuple[SparseVector, dict[str, float]]:
    model = _MODELS[model_id]
    vector = model.vectorize(purpose)
    return vector, model.probabilities(vector)


_MODELS: dict[int, LexicalModel] = {}


def purpose_analysis(model: LexicalModel, purpose: str) -> tuple[SparseVector, dict[str, float]]:
    """Vector and category probabilities of a purpose text, cached (purposes repeat a lot)."""
    _MODELS.setdefault(id(model), model)
    return _purpose(id(model), purpose)


def relevance_score(
    model: LexicalModel,
    prompt_vector: SparseVector,
    prompt_probs: dict[str, float],
    purpose: str,
) -> float | None:
    if not purpose.strip():
        return None
    purpose_vector, purpose_probs = purpose_analysis(model, purpose)
    features = relevance_features(prompt_vector, prompt_probs, purpose_vector, purpose_probs)
    return round(calibrate(model, features), 4)
