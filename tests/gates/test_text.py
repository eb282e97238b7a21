"""Text and embedding kinds on plain inputs: the bundled sets, recall@k, fake models and the real MiniLM."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from lockgate.errors import NotFound, ValidationError
from lockgate.gates.kinds import CHECK_KINDS, GateInputs, PredictionFailed, run_check
from lockgate.gates.policy import parse_policy
from lockgate.gates.result import CheckResult
from lockgate.gates.text import label_accuracy, load_text_evalset, recall_at_k, retrieval_pairs

POSITIVE = re.compile(r"love|excellent|great|best|exceeded|fantastic|happy|wonderful")


def keyword_classifier(texts: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.array(["positive" if POSITIVE.search(t.lower()) else "negative" for t in texts])


def always_positive(texts: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.array(["positive"] * len(texts))


def bag_of_words(texts: Sequence[str]) -> np.ndarray[Any, Any]:
    rows = np.zeros((len(texts), 256))
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            rows[row, sum(map(ord, word)) % 256] += 1
    return rows


def random_encoder(texts: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.random.default_rng(len(texts)).normal(size=(len(texts), 16))


def _run(kind: str, settings: str, **inputs: Any) -> list[CheckResult]:
    policy = parse_policy(f"checks:\n  {kind}: {settings}\n")
    ((check, parsed),) = policy.checks
    return run_check(check, parsed, GateInputs(seed=3, **inputs))


def test_the_bundled_sentiment_set_is_balanced_and_readable() -> None:
    evalset = load_text_evalset("sentiment")
    assert len(evalset.texts) == 80
    assert evalset.labels.count("positive") == evalset.labels.count("negative") == 40
    assert label_accuracy(evalset.labels, keyword_classifier(evalset.texts)) == 1.0
    assert label_accuracy(evalset.labels, always_positive(evalset.texts)) == 0.5


def test_labels_compare_as_text() -> None:
    assert label_accuracy(("1", "0"), np.array([1.0, 0.0])) == 1.0
    with pytest.raises(ValueError, match="3 predictions for 2 texts"):
        label_accuracy(("1", "0"), [1, 0, 1])


def test_a_missing_or_malformed_evalset_names_the_fix(tmp_path: Any) -> None:
    with pytest.raises(NotFound, match="no bundled text evaluation set 'imdb'"):
        load_text_evalset("imdb")
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,y\nhello,1\n")
    with pytest.raises(ValidationError, match="needs columns 'text' and 'label'"):
        load_text_evalset(path=bad)


def test_recall_at_k_counts_the_relevant_document_in_the_top_k() -> None:
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    documents = np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
    assert recall_at_k(queries, documents, (1, 2), k=1) == 0.5
    assert recall_at_k(queries, documents, (1, 2), k=2) == 1.0
    with pytest.raises(ValueError, match="do not line up"):
        recall_at_k(queries, documents, (0,), k=1)


def test_generated_pairs_are_deterministic_per_seed() -> None:
    first, again, other = (
        retrieval_pairs(30, seed=1),
        retrieval_pairs(30, seed=1),
        retrieval_pairs(30, seed=2),
    )
    assert first == again and first.queries != other.queries
    assert len(first.documents) == 80 and len(set(first.relevant)) == 30
    for query, index in zip(first.queries, first.relevant, strict=True):
        item = query.removesuffix("?").split("my ")[-1].split("broken ")[-1].split(" a ")[-1]
        assert item.split()[-1] in first.documents[index]


def test_a_good_text_classifier_passes_and_a_worse_one_fails_against_it() -> None:
    settings = "{threshold: 0.9, margin: 0.02}"
    (good,) = _run("text_classification", settings, candidate_model=keyword_classifier)
    assert good.passed and good.numbers["candidate"] == 1.0 and good.numbers["n"] == 80
    (worse,) = _run(
        "text_classification", settings, candidate_model=always_positive, baseline_model=keyword_classifier
    )
    assert not worse.passed and worse.kind == "text_classification"
    assert "below the threshold 0.9" in worse.message and "below the baseline's 1" in worse.message


def test_a_classifier_that_raises_fails_the_check_with_its_message() -> None:
    def broken(texts: Sequence[str]) -> np.ndarray[Any, Any]:
        raise PredictionFailed("expected column 'review'")

    (result,) = _run("text_classification", "{threshold: 0.5}", candidate_model=broken)
    assert not result.passed and "expected column 'review'" in result.message


def test_an_encoder_that_reads_the_words_passes_recall_and_a_random_one_fails() -> None:
    (good,) = _run("embedding_retrieval", "{k: 5, threshold: 0.8}", candidate_model=bag_of_words)
    assert good.passed and good.name == "embedding recall@5" and good.numbers["n"] == 60
    (bad,) = _run(
        "embedding_retrieval",
        "{k: 5, margin: 0.05}",
        candidate_model=random_encoder,
        baseline_model=bag_of_words,
    )
    assert not bad.passed and "below the baseline's" in bad.message


def test_an_encoder_with_the_wrong_output_shape_fails() -> None:
    (result,) = _run("embedding_retrieval", "{}", candidate_model=lambda texts: np.ones(len(texts)))
    assert not result.passed and "not one embedding per text" in result.message


def test_text_policy_keys_are_validated_with_their_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_policy("checks:\n  embedding_retrieval:\n    k: 0\n    recall: 0.9\n")
    text = info.value.message
    assert "line 3: checks.embedding_retrieval.k: must be greater than or equal to 1" in text
    assert (
        "line 4: checks.embedding_retrieval.recall: is not a known key (known: k, margin, pairs, threshold)"
        in text
    )
    assert {"text_classification", "embedding_retrieval"} <= set(CHECK_KINDS)


@pytest.mark.slow
def test_the_bundled_minilm_finds_the_guides(minilm: Callable[..., Any]) -> None:
    (result,) = _run("embedding_retrieval", "{k: 5, threshold: 0.95}", candidate_model=minilm)
    assert result.passed, result.message
    (top1,) = _run("embedding_retrieval", "{k: 1, threshold: 0.8}", candidate_model=minilm)
    assert top1.passed, top1.message
