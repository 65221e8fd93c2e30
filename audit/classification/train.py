"""Train the lexical classifier deterministically from the "train" split of the labeled set.

    .venv/bin/python -m audit.classification.train          # writes data/model.json.gz
    .venv/bin/python -m audit.classification.train --cv 5   # k-fold accuracy on the train split

Only lines with "split": "train" are read; the held-out lines are never seen here, so they stay
a fair test. Same data, same code -> byte-identical model file.
"""

import argparse
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

from audit.classification.features import SparseVector, raw_features, tfidf
from audit.classification.model import MODEL_PATH, LexicalModel
from audit.classification.relevance import relevance_features
from audit.classification.taxonomy import DEFAULT_CATEGORIES, DEFAULT_KEYS

DATA_PATH = Path(__file__).resolve().parent / "data" / "labeled.jsonl"
SEED = 20260101
EPOCHS = 40
LEARNING_RATE = 0.8
L2 = 1e-5
MIN_DF = 2
CENTROID_FEATURES = 400


def load(path: Path = DATA_PATH, split: str | None = "train") -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [row for row in rows if split is None or row.get("split", "train") == split]


def _examples(rows: list[dict]) -> list[tuple[str, str]]:
    """Training documents: the labeled prompts plus the taxonomy's descriptions and examples."""
    docs = [(row["text"], row["category"]) for row in rows]
    for category in DEFAULT_CATEGORIES:
        docs.append((category.description, category.key))
        docs.extend((example, category.key) for example in category.examples)
    return docs


def fit(
    docs: list[tuple[str, str]],
    *,
    epochs: int = EPOCHS,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
    min_df: int = MIN_DF,
) -> LexicalModel:
    classes = list(DEFAULT_KEYS)
    index = {key: k for k, key in enumerate(classes)}
    counts = [raw_features(text) for text, _ in docs]
    df: Counter[str] = Counter()
    for count in counts:
        df.update(count.keys())
    total = len(docs)
    idf = {
        feature: math.log((1 + total) / (1 + freq)) + 1.0
        for feature, freq in df.items()
        if freq >= min_df
    }
    vectors = [tfidf(count, idf) for count in counts]
    labels = [index[label] for _, label in docs]
    size = len(classes)
    weights: dict[str, list[float]] = {feature: [0.0] * size for feature in idf}
    bias = [0.0] * size
    model = LexicalModel(classes=classes, idf=idf, weights=weights, bias=bias)
    order = list(range(total))
    rng = random.Random(SEED)  # noqa: S311 - reproducible shuffling, not security
    for epoch in range(epochs):
        rng.shuffle(order)
        rate = learning_rate / (1.0 + 0.2 * epoch)
        for i in order:
            vector = vectors[i]
            scores = model.scores(vector)
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            norm = sum(exps)
            grads = [e / norm for e in exps]
            grads[labels[i]] -= 1.0
            decay = 1.0 - rate * l2
            for feature, value in vector.items():
                row = weights[feature]
                for k in range(size):
                    row[k] = row[k] * decay - rate * grads[k] * value
            for k in range(size):
                bias[k] -= rate * grads[k] * 0.1
    model.weights = {feature: row for feature, row in weights.items() if any(row)}
    model.idf = {feature: idf[feature] for feature in model.weights}
    model.centroids = _centroids(vectors, labels, classes)
    return model


def _centroids(
    vectors: list[SparseVector], labels: list[int], classes: list[str]
) -> dict[str, SparseVector]:
    sums: dict[int, dict[str, float]] = {k: {} for k in range(len(classes))}
    for vector, label in zip(vectors, labels, strict=True):
        bucket = sums[label]
        for feature, value in vector.items():
            bucket[feature] = bucket.get(feature, 0.0) + value
    centroids = {}
    for k, bucket in sums.items():
        top = sorted(bucket.items(), key=lambda item: (-item[1], item[0]))[:CENTROID_FEATURES]
        norm = math.sqrt(sum(v * v for _, v in top)) or 1.0
        centroids[classes[k]] = {feature: value / norm for feature, value in top}
    return centroids


def _folds(rows: list[dict], k: int) -> list[list[int]]:
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)  # noqa: S311 - reproducible folds
    return [order[i::k] for i in range(k)]


def _fit_logistic(xs: list[list[float]], ys: list[int], *, l2: float = 1e-3) -> list[float]:
    """Plain batch gradient descent; returns [intercept, *coef]."""
    theta = [0.0] * (len(xs[0]) + 1)
    n = len(xs)
    for _ in range(4000):
        grad = [0.0] * len(theta)
        for x, y in zip(xs, ys, strict=True):
            z = theta[0] + sum(t * v for t, v in zip(theta[1:], x, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))
            grad[0] += p - y
            for j, v in enumerate(x):
                grad[j + 1] += (p - y) * v
        for j in range(len(theta)):
            penalty = l2 * theta[j] if j else 0.0
            theta[j] -= 1.0 * (grad[j] / n + penalty)
    return theta


def out_of_fold(rows: list[dict], k: int) -> tuple[list[str], list[list[float]]]:
    """Predicted category and relevance features of every row by a model that never saw it."""
    predicted = [""] * len(rows)
    features: list[list[float]] = [[] for _ in rows]
    for fold in _folds(rows, k):
        held = set(fold)
        model = fit(_examples([row for i, row in enumerate(rows) if i not in held]))
        for i in fold:
            row = rows[i]
            vector = model.vectorize(row["text"])
            probs = model.probabilities(vector)
            predicted[i] = max(probs.items(), key=lambda item: item[1])[0]
            if row.get("project_purpose"):
                purpose_vector = model.vectorize(row["project_purpose"])
                features[i] = relevance_features(
                    vector, probs, purpose_vector, model.probabilities(purpose_vector)
                )
    return predicted, features


def train(rows: list[dict], *, folds: int = 5) -> LexicalModel:
    _predicted, features = out_of_fold(rows, folds)
    pairs = [
        (x, int(bool(row["relevant"])))
        for x, row in zip(features, rows, strict=True)
        if x and row.get("relevant") is not None
    ]
    theta = _fit_logistic([x for x, _ in pairs], [y for _, y in pairs])
    model = fit(_examples(rows))
    model.relevance_intercept = theta[0]
    model.relevance_coef = theta[1:]
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cv", type=int, default=0, help="report k-fold accuracy, write nothing")
    parser.add_argument("--data", type=Path, default=DATA_PATH)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    rows = load(args.data)
    if args.cv:
        predicted, _ = out_of_fold(rows, args.cv)
        correct = sum(p == row["category"] for p, row in zip(predicted, rows, strict=True))
        sys.stdout.write(f"{args.cv}-fold accuracy on train split: {correct / len(rows):.3f}\n")
        return 0
    model = train(rows)
    model.save(args.out)
    sys.stdout.write(
        f"trained on {len(rows)} prompts, {len(model.weights)} features -> {args.out}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
