"""Evaluate the classifier on a labeled JSONL file (the held-out split by default).

Each line: {"text", "category", "project_purpose", "relevant", "sensitivity"[, "split"]}.
"""

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.classification import classify
from audit.classification.detectors import LEVELS, RESTRICTED
from audit.classification.taxonomy import DEFAULT_KEYS


def read_jsonl(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if split:
        rows = [row for row in rows if row.get("split") == split]
    return rows


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    # Rank-based (Mann-Whitney U) with average ranks for ties.
    ordered = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1][0] == ordered[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ordered[k][1]] = (i + j) / 2 + 1
        i = j + 1
    positive_ranks = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _precision_recall(pairs: Iterable[tuple[str, str]], level: str) -> tuple[float, float, int]:
    tp = fp = fn = support = 0
    for gold, predicted in pairs:
        support += gold == level
        if predicted == level and gold == level:
            tp += 1
        elif predicted == level:
            fp += 1
        elif gold == level:
            fn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, support


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Classify every row and compare with its labels. Returns figures only, never text."""
    if not rows:
        raise ValueError("no rows to evaluate")
    classify("warm-up", project_purpose="warm-up")  # loads the model outside the timing
    results = []
    durations = []
    for row in rows:
        started = time.perf_counter()
        results.append(classify(row["text"], project_purpose=row.get("project_purpose") or ""))
        durations.append(time.perf_counter() - started)
    total_time = sum(durations)

    keys = list(DEFAULT_KEYS)
    gold = [row["category"] for row in rows]
    predicted = [result.category for result in results]
    confusion = {g: dict.fromkeys(keys, 0) for g in keys}
    for g, p in zip(gold, predicted, strict=True):
        confusion.setdefault(g, dict.fromkeys(keys, 0))[p] = confusion[g].get(p, 0) + 1
    per_category = {}
    f1s = []
    for key in keys:
        tp = confusion.get(key, {}).get(key, 0)
        support = sum(confusion.get(key, {}).values())
        predicted_n = sum(confusion[g].get(key, 0) for g in confusion)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            f1s.append(f1)
        per_category[key] = {
            "support": support,
            "accuracy": round(recall, 4),
            "precision": round(precision, 4),
            "f1": round(f1, 4),
        }

    sensitivity_pairs = [
        (row["sensitivity"], result.sensitivity)
        for row, result in zip(rows, results, strict=True)
        if row.get("sensitivity")
    ]
    sensitivity = {}
    for level in LEVELS:
        precision, recall, support = _precision_recall(sensitivity_pairs, level)
        sensitivity[level] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "support": support,
        }
    # Restricted as a binary decision: restricted vs everything else.
    restricted_precision, restricted_recall, _ = _precision_recall(sensitivity_pairs, RESTRICTED)

    relevance_rows = [
        (result.relevance, bool(row["relevant"]))
        for row, result in zip(rows, results, strict=True)
        if result.relevance is not None and row.get("relevant") is not None
    ]
    auc = roc_auc([r for r, _ in relevance_rows], [y for _, y in relevance_rows])
    ms = sorted(d * 1000 for d in durations)
    return {
        "prompts": len(rows),
        "category_accuracy": round(
            sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(rows), 4
        ),
        "macro_f1": round(statistics.fmean(f1s), 4) if f1s else 0.0,
        "per_category": per_category,
        "confusion_matrix": confusion,
        "sensitivity": sensitivity,
        "sensitivity_accuracy": round(
            sum(g == p for g, p in sensitivity_pairs) / max(len(sensitivity_pairs), 1), 4
        ),
        "restricted_precision": round(restricted_precision, 4),
        "restricted_recall": round(restricted_recall, 4),
        "relevance_auc": round(auc, 4) if auc is not None else None,
        "prompts_per_second": round(len(rows) / total_time, 1) if total_time else None,
        "latency_ms_p50": round(ms[len(ms) // 2], 3),
        "latency_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "category_distribution": dict(Counter(predicted)),
    }
