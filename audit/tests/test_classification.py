"""The classification engine: API contract, taxonomy customisation, relevance, privacy."""

import json
import logging
import socket
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import call_command

from audit.classification import (
    DEFAULT_TAXONOMY,
    Category,
    Classification,
    Taxonomy,
    classify,
    prompt_text_for_classification,
)
from audit.classification.evaluation import evaluate, read_jsonl, roc_auc
from audit.classification.model import MODEL_PATH, LexicalModel
from audit.classification.taxonomy import DEFAULT_KEYS
from audit.classification.train import DATA_PATH, _examples, fit, load

BACKEND_PURPOSE = (
    "Backend engineering for our payments platform: Python/Django services, SQL and CI."
)
SECRET_PROMPT = "Why does boto3 fail? aws_access_key_id = AKIA4Q2ZJX7LMN3BV8RT in ~/.aws/config"


def test_classify_returns_the_documented_fields() -> None:
    result = classify("Write a pytest test for a function that parses amounts like '12,50'.")
    assert isinstance(result, Classification)
    assert result.category in DEFAULT_KEYS
    assert 0.0 <= result.category_confidence <= 1.0
    assert result.relevance is None  # no purpose text given
    assert result.sensitivity in ("public", "internal", "confidential", "restricted")
    assert isinstance(result.detectors, tuple)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        (
            "Fix this Python function, it raises IndexError on an empty list: def f(x): x[0]",
            "software_development",
        ),
        ("Translate into German: 'Your request has been approved by your manager.'", "translation"),
        ("Summarize this meeting transcript in five bullet points: ...", "summarization"),
        ("What can I cook tonight for my kids with pasta and spinach?", "personal"),
    ],
)
def test_classify_recognises_clear_cases(text: str, category: str) -> None:
    assert classify(text).category == category


def test_relevance_is_higher_for_a_prompt_that_fits_the_purpose() -> None:
    fitting = classify(
        "Review this Django view for SQL injection and missing tests",
        project_purpose=BACKEND_PURPOSE,
    )
    off_topic = classify(
        "Plan a romantic weekend in Rome with my girlfriend", project_purpose=BACKEND_PURPOSE
    )
    assert fitting.relevance is not None
    assert off_topic.relevance is not None
    assert 0.0 <= off_topic.relevance < fitting.relevance <= 1.0


def test_relevance_is_none_without_purpose_text() -> None:
    assert classify("Explain OAuth", project_purpose="   ").relevance is None


def test_detectors_report_names_and_the_sensitivity_level() -> None:
    result = classify(SECRET_PROMPT)
    assert result.sensitivity == "restricted"
    assert result.detectors == ("aws_access_key",)
    assert "AKIA" not in repr(result)


def test_a_disabled_category_is_never_returned() -> None:
    text = "Translate into French: 'Your payslip is ready.'"
    assert classify(text).category == "translation"
    taxonomy = DEFAULT_TAXONOMY.disabled("translation")
    result = classify(text, taxonomy=taxonomy)
    assert result.category != "translation"
    assert result.category in set(taxonomy.keys())


def test_renaming_a_category_keeps_its_key_and_its_result() -> None:
    text = "Write a SQL query that returns each customer's latest order"
    renamed = DEFAULT_TAXONOMY.renamed("software_development", "Engineering")
    assert renamed.get("software_development").label == "Engineering"  # type: ignore[union-attr]
    assert classify(text, taxonomy=renamed) == classify(text)


def test_a_tenant_category_with_description_and_examples_is_classified() -> None:
    legal = Category(
        key="contract_review",
        label="Contract review",
        description="Reviewing contract clauses for legal risk: liability, indemnity, termination",
        examples=(
            "Is this limitation of liability clause acceptable for us as the supplier?",
            "Review the indemnification clause in this MSA and flag risks",
            "Does this termination clause favour the customer? Suggest a redline",
        ),
    )
    taxonomy = DEFAULT_TAXONOMY.with_category(legal)
    result = classify(
        "Please review this liability clause and suggest a redline that limits our risk",
        taxonomy=taxonomy,
    )
    assert result.category == "contract_review"
    # A prompt that has nothing to do with contracts stays in its default category.
    other = classify("Write a Go function that retries HTTP requests", taxonomy=taxonomy)
    assert other.category == "software_development"


def test_a_tenant_category_in_words_the_model_never_saw_is_classified() -> None:
    aquaculture = Category(
        key="aquaculture",
        label="Fish farming",
        description="Salmon farming operations: sea lice, feed conversion, smolt, net pens",
        examples=(
            "What is a good feed conversion ratio for Atlantic salmon smolt in net pens?",
            "How do we reduce sea lice counts in our salmon pens without more treatments?",
        ),
    )
    taxonomy = DEFAULT_TAXONOMY.with_category(aquaculture)
    result = classify("Sea lice counts in pen 4 are rising again, any ideas?", taxonomy=taxonomy)
    assert result.category == "aquaculture"


def test_an_empty_taxonomy_yields_no_category() -> None:
    result = classify("anything", taxonomy=Taxonomy(()))
    assert result.category == ""
    assert result.category_confidence == 0.0


def test_prompt_text_takes_system_and_text_blocks_and_skips_images() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "You are a helpful assistant."}],
        "messages": [
            {"role": "user", "content": "First question"},
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "data": "iVBORw0KGgo="}},
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "tool_result", "tool_use_id": "t1", "content": "tool output"},
                ],
            },
        ],
    }
    text = prompt_text_for_classification(body)
    assert "You are a helpful assistant." in text
    assert "First question" in text
    assert "What is in this picture?" in text
    assert "tool output" in text
    assert "iVBORw0KGgo" not in text


def test_prompt_text_tolerates_malformed_bodies() -> None:
    assert prompt_text_for_classification({}) == ""
    assert prompt_text_for_classification({"messages": "nope", "system": 3}) == ""
    assert prompt_text_for_classification({"messages": [None, {"content": None}]}) == ""


def test_classification_stays_in_process_no_logging_no_db_no_redis_no_network(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No django_db mark: pytest-django makes any database access fail this test.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the classifier left the process")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(redis.Redis, "execute_command", refuse)
    caplog.set_level(logging.DEBUG)
    result = classify(SECRET_PROMPT + " unique-purpose-1", project_purpose=BACKEND_PURPOSE + " x")
    assert result.sensitivity == "restricted"
    assert "AKIA4Q2ZJX7LMN3BV8RT" not in caplog.text
    assert "boto3" not in caplog.text


def test_classification_is_deterministic() -> None:
    text = "Brainstorm 10 names for our new analytics feature"
    assert classify(text, project_purpose=BACKEND_PURPOSE) == classify(
        text, project_purpose=BACKEND_PURPOSE
    )


def test_model_file_is_plain_json_and_round_trips() -> None:
    model = LexicalModel.load(MODEL_PATH)
    assert model.classes == list(DEFAULT_KEYS)
    again = LexicalModel.from_json(json.loads(json.dumps(model.to_json())))
    vector = model.vectorize("Summarize the meeting notes below")
    assert again.probabilities(vector) == pytest.approx(model.probabilities(vector), abs=1e-5)


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.5], [True]) is None


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_classify_eval_json_prints_one_object_with_the_required_keys(tmp_path: Path) -> None:
    rows = [
        {
            "text": "Translate 'good morning' into Spanish",
            "category": "translation",
            "project_purpose": "Localization team translating our product UI",
            "relevant": True,
            "sensitivity": "public",
        },
        {
            "text": SECRET_PROMPT,
            "category": "software_development",
            "project_purpose": BACKEND_PURPOSE,
            "relevant": True,
            "sensitivity": "restricted",
        },
        {
            "text": "Plan a birthday party for my daughter",
            "category": "personal",
            "project_purpose": BACKEND_PURPOSE,
            "relevant": False,
            "sensitivity": "public",
        },
    ]
    out = StringIO()
    call_command(
        "classify_eval",
        "--file",
        str(_write_jsonl(tmp_path / "e.jsonl", rows)),
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    for key in (
        "category_accuracy",
        "macro_f1",
        "restricted_recall",
        "restricted_precision",
        "relevance_auc",
        "prompts_per_second",
    ):
        assert key in result
    assert result["prompts"] == 3
    assert result["restricted_recall"] == 1.0
    assert result["restricted_precision"] == 1.0
    assert 0.0 <= result["category_accuracy"] <= 1.0


def test_classify_eval_text_report_lists_categories_and_matrix(tmp_path: Path) -> None:
    rows = [
        {
            "text": "Summarize this report in 3 bullets",
            "category": "summarization",
            "project_purpose": "",
            "relevant": None,
            "sensitivity": "public",
            "split": "heldout",
        },
        {
            "text": "ignored",
            "category": "personal",
            "project_purpose": "",
            "relevant": None,
            "sensitivity": "public",
            "split": "train",
        },
    ]
    out = StringIO()
    call_command(
        "classify_eval",
        "--file",
        str(_write_jsonl(tmp_path / "e.jsonl", rows)),
        "--split",
        "heldout",
        stdout=out,
    )
    report = out.getvalue()
    assert "prompts: 1" in report
    assert "confusion matrix" in report
    assert "relevance ROC-AUC: n/a" in report


def test_held_out_split_meets_the_targets() -> None:
    """The committed model on the held-out split (never used for training or tuning)."""
    rows = read_jsonl(DATA_PATH, "heldout")
    assert len(rows) >= 0.3 * len(read_jsonl(DATA_PATH))
    result = evaluate(rows)
    assert result["category_accuracy"] >= 0.85
    assert result["restricted_recall"] >= 0.98
    assert result["restricted_precision"] >= 0.90
    assert result["relevance_auc"] >= 0.9


def test_training_is_deterministic_and_reads_only_the_train_split() -> None:
    rows = load(DATA_PATH)
    assert rows
    assert all(row["split"] == "train" for row in rows)
    sample = rows[:40]
    first = fit(_examples(sample), epochs=3).to_json()
    second = fit(_examples(sample), epochs=3).to_json()
    assert first == second
