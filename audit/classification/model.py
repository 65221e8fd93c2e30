"""The lexical backend: a multinomial logistic regression over TF-IDF features, pure Python.

The trained parameters live in data/model.json.gz (plain JSON, gzip-compressed; no pickle), made
by `python -m audit.classification.train`. Loaded lazily once per process.
"""

import gzip
import json
import math
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from audit.classification.features import SparseVector, raw_features, tfidf

MODEL_PATH = Path(__file__).resolve().parent / "data" / "model.json.gz"
FORMAT_VERSION = 1


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = sum(exps)
    return [value / total for value in exps]


@dataclass
class LexicalModel:
    classes: list[str]
    idf: dict[str, float]
    weights: dict[str, list[float]]
    bias: list[float]
    # Mean TF-IDF vector of each class's training prompts: the similarity side of the taxonomy.
    centroids: dict[str, SparseVector] = field(default_factory=dict)
    # Logistic calibration of relevance: intercept + coef . (cosine, agreement, personal, ...)
    relevance_coef: list[float] = field(default_factory=list)
    relevance_intercept: float = 0.0

    def vectorize(self, text: str) -> SparseVector:
        return tfidf(raw_features(text), self.idf)

    def vectorize_open(self, text: str) -> SparseVector:
        """Like vectorize, but words the training set never saw count too (as rare words)."""
        return tfidf(raw_features(text), self.idf, unknown=self.max_idf)

    @cached_property
    def max_idf(self) -> float:
        return max(self.idf.values(), default=1.0)

    def scores(self, vector: SparseVector) -> list[float]:
        totals = list(self.bias)
        size = len(totals)
        weights = self.weights
        for feature, value in vector.items():
            row = weights.get(feature)
            if row is not None:
                for k in range(size):
                    totals[k] += value * row[k]
        return totals

    def probabilities(self, vector: SparseVector) -> dict[str, float]:
        return dict(zip(self.classes, softmax(self.scores(vector)), strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "classes": self.classes,
            "bias": [round(value, 6) for value in self.bias],
            "features": {
                feature: [
                    round(self.idf[feature], 5),
                    *(round(w, 6) for w in self.weights[feature]),
                ]
                for feature in sorted(self.weights)
            },
            "centroids": {
                key: {feature: round(value, 6) for feature, value in sorted(centroid.items())}
                for key, centroid in sorted(self.centroids.items())
            },
            "relevance": {
                "coef": [round(value, 6) for value in self.relevance_coef],
                "intercept": round(self.relevance_intercept, 6),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LexicalModel":
        if data.get("format") != FORMAT_VERSION:
            raise ValueError("unsupported classification model format")
        features: dict[str, list[float]] = data["features"]
        return cls(
            classes=list(data["classes"]),
            idf={feature: row[0] for feature, row in features.items()},
            weights={feature: row[1:] for feature, row in features.items()},
            bias=list(data["bias"]),
            centroids={key: dict(value) for key, value in data["centroids"].items()},
            relevance_coef=list(data["relevance"]["coef"]),
            relevance_intercept=float(data["relevance"]["intercept"]),
        )

    def save(self, path: Path = MODEL_PATH) -> None:
        payload = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))
        # mtime=0 keeps the file byte-for-byte reproducible from the same training data.
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out,
        ):
            out.write(payload.encode("utf-8"))

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "LexicalModel":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return cls.from_json(json.load(handle))


@cache
def default_model() -> LexicalModel:
    """The model shipped in the repository, loaded once per process."""
    return LexicalModel.load()
