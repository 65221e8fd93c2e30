"""Throughput of the local request classifier (audit.classification.classify) on one core.

    .venv/bin/python bench/classify_bench.py [--rounds 5] [--long]

Feeds every prompt of the labeled set (all splits; each with its project purpose, as the proxy
would) through classify() in a loop and prints prompts/s and p50/p99 latency per prompt.
--long adds a round of long prompts (30 kB: a pasted log with a question at the end).
No Django, database or network is needed: the engine is pure Python in memory.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.classification import classify  # noqa: E402
from audit.classification.model import default_model  # noqa: E402

DATA = ROOT / "audit" / "classification" / "data" / "labeled.jsonl"


def run(prompts: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    durations: list[float] = []
    for _ in range(rounds):
        for text, purpose in prompts:
            started = time.perf_counter_ns()
            classify(text, project_purpose=purpose)
            durations.append((time.perf_counter_ns() - started) / 1e6)
    durations.sort()
    total_s = sum(durations) / 1000
    return {
        "prompts": len(durations),
        "prompts_per_second": round(len(durations) / total_s, 1),
        "p50_ms": round(statistics.median(durations), 3),
        "p99_ms": round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 3),
        "mean_chars": round(statistics.fmean(len(t) for t, _ in prompts)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--long", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]
    prompts = [(row["text"], row.get("project_purpose") or "") for row in rows]
    started = time.perf_counter()
    default_model()
    load_ms = (time.perf_counter() - started) * 1000
    classify("warm-up")
    print(f"model load: {load_ms:.0f} ms (once per process)")
    result = run(prompts, args.rounds)
    print(
        f"labeled set: {result['prompts']} classifications, mean {result['mean_chars']} chars: "
        f"{result['prompts_per_second']} prompts/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms"
    )
    if args.long:
        log = "\n".join(
            f"2024-05-02 10:{i % 60:02d}:03 ERROR worker-{i % 7} job {i} failed: timeout after 30s"
            for i in range(400)
        )
        long_prompts = [(log + "\n\nWhat is going wrong here?", prompts[0][1])] * 50
        result = run(long_prompts, 1)
        print(
            f"long prompts: {result['prompts']} x {result['mean_chars']} chars: "
            f"{result['prompts_per_second']} prompts/s, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
