"""Results by class (scikit-learn underneath): counted right, absent classes None, bad input refused."""

import numpy as np
import pytest

from cnnlab.engine.class_metrics import classification_report, confusion, per_class_accuracy

NAMES = ["cat", "dog", "ship", "frog"]


def test_a_small_case_counted_by_hand():
    labels, predictions = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]
    report = classification_report(np.array(labels), np.array(predictions), NAMES)
    assert report["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert report["per_class_accuracy"] == {"cat": 0.5, "dog": 1.0, "ship": 2 / 3, "frog": None}
    assert all(type(value) is int for row in report["confusion_matrix"] for value in row)  # JSON-ready


@pytest.mark.parametrize("seed", range(5))
def test_random_predictions_agree_with_an_independent_count(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 12))
    labels = rng.integers(0, classes, size=int(rng.integers(1, 400)))
    predictions = np.where(rng.random(len(labels)) < 0.6, labels, rng.integers(0, classes, len(labels)))
    names = [f"c{i}" for i in range(classes)]
    expected = np.zeros((classes, classes), np.int64)
    for true, guess in zip(labels, predictions):
        expected[true, guess] += 1
    assert np.array_equal(confusion(labels, predictions, classes), expected)
    accuracy = per_class_accuracy(labels, predictions, names)
    for index, name in enumerate(names):
        total = expected[index].sum()
        assert accuracy[name] == (expected[index, index] / total if total else None)


def test_an_empty_split_gives_zeros_and_no_accuracies():
    empty = np.zeros(0, np.int64)
    report = classification_report(empty, empty, NAMES)
    assert report["confusion_matrix"] == [[0] * 4] * 4
    assert report["per_class_accuracy"] == dict.fromkeys(NAMES)


@pytest.mark.parametrize("labels,predictions,message", [
    ([0, 4], [0, 1], r"labels must lie in 0..3, found 0..4"),      # scikit-learn alone drops the 4
    ([0, 1], [0, -1], r"predictions must lie in 0..3, found -1..0"),
    ([0.0, 1.0], [0, 1], "labels must be class indices"),
    ([0, 1, 2], [0, 1], "3 labels but 2 predictions"),
])
def test_labels_it_would_miscount_are_refused(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        classification_report(np.array(labels), np.array(predictions), NAMES)


def test_the_evaluation_module_offers_the_report():
    from cnnlab.engine import evaluation

    assert evaluation.classification_report is classification_report


def _evaluation(names, matrix):
    from cnnlab.runs.evaluation import Evaluation

    return Evaluation("test", int(np.sum(matrix)), 0.5, 0.5, names, matrix, dict.fromkeys(names))


def test_confusion_csv_of_plain_names_is_unchanged():
    from cnnlab.presenters.tables import confusion_csv

    text = confusion_csv(_evaluation(["cat", "dog"], [[3, 1], [0, 2]]))
    assert text == "true\\predicted,cat,dog\ncat,3,1\ndog,0,2\n"


def test_confusion_csv_names_with_commas_quotes_and_newlines_round_trip():
    import csv
    import io

    from cnnlab.presenters.tables import confusion_csv

    names = ['car, red', 'the "big" one', "two\nlines", " spaced ", "plain"]
    matrix = [[i * 5 + j for j in range(5)] for i in range(5)]
    rows = list(csv.reader(io.StringIO(confusion_csv(_evaluation(names, matrix)), newline="")))
    assert rows[0] == ["true\\predicted", *names]
    assert [row[0] for row in rows[1:]] == names
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == matrix
