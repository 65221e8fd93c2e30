"""Evaluate the local request classifier on a labeled JSONL file.

python manage.py classify_eval --file audit/classification/data/labeled.jsonl --split heldout
python manage.py classify_eval --file F.jsonl --json
"""

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from audit.classification.evaluation import evaluate, read_jsonl
from audit.classification.taxonomy import DEFAULT_KEYS
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import DomainError


class Command(JsonCommand):
    help = "Per-category accuracy, macro-F1, confusion matrix, sensitivity P/R, relevance AUC."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--file", required=True, type=Path, help="labeled JSONL file")
        parser.add_argument(
            "--split", default="", help='only lines with this "split" value, e.g. heldout'
        )

    def run(self, **options: Any) -> dict[str, Any]:
        path: Path = options["file"]
        if not path.is_file():
            raise DomainError(f"no such file: {path}")
        rows = read_jsonl(path, options["split"] or None)
        if not rows:
            raise DomainError("the file has no rows to evaluate")
        return evaluate(rows)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["json"]:
            super().handle(*args, **options)
            return
        result = self.run(**options)
        write = self.stdout.write
        write(f"prompts: {result['prompts']}")
        write(f"category accuracy: {result['category_accuracy']:.1%}")
        write(f"macro-F1: {result['macro_f1']:.3f}")
        write("\nper category (accuracy = recall, precision, F1, support):")
        for key, row in result["per_category"].items():
            write(
                f"  {key:24} {row['accuracy']:6.1%} {row['precision']:6.1%} "
                f"{row['f1']:.3f} {row['support']:4}"
            )
        keys = list(DEFAULT_KEYS)
        write("\nconfusion matrix (rows = labeled, columns = predicted):")
        write(" " * 26 + " ".join(f"{key[:6]:>6}" for key in keys))
        for key in keys:
            cells = result["confusion_matrix"].get(key, {})
            write(f"  {key:24}" + " ".join(f"{cells.get(k, 0):6}" for k in keys))
        write("\nsensitivity (precision, recall, support):")
        for level, row in result["sensitivity"].items():
            write(f"  {level:13} {row['precision']:6.1%} {row['recall']:6.1%} {row['support']:4}")
        write(
            f"restricted precision {result['restricted_precision']:.1%}, "
            f"recall {result['restricted_recall']:.1%}"
        )
        auc = result["relevance_auc"]
        write(f"relevance ROC-AUC: {auc:.3f}" if auc is not None else "relevance ROC-AUC: n/a")
        write(
            f"throughput: {result['prompts_per_second']} prompts/s "
            f"(p50 {result['latency_ms_p50']} ms, p99 {result['latency_ms_p99']} ms)"
        )
