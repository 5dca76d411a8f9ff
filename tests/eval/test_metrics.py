import pytest

from eval import metrics


@pytest.mark.parametrize("answer", ["Dense Residential.", "dense residential", "denseresidential", " DENSE residential\n"])
def test_geochat_normalisation_matches_all_spellings(answer):
    assert metrics.is_correct(answer, "dense residential", metrics.normalize_geochat)


def test_strict_normalisation_needs_the_exact_phrase():
    strict = metrics.normalize_strict
    assert metrics.is_correct("Dense Residential", "dense residential", strict)
    assert metrics.is_correct("dense  residential ", "dense residential", strict)
    assert not metrics.is_correct("Dense Residential.", "dense residential", strict)
    assert not metrics.is_correct("denseresidential", "dense residential", strict)


def test_accuracy_and_per_class():
    answers = ["river", "River.", "forest", "dense residential", "beach"]
    truths = ["river", "river", "river", "denseresidential", "forest"]
    assert metrics.accuracy(answers, truths) == pytest.approx(60.0)
    assert metrics.accuracy(answers, truths, metrics.normalize_strict) == pytest.approx(20.0)
    assert metrics.accuracy([], []) == 0.0
    per = metrics.accuracy_by(answers, truths, truths)
    assert per["river"] == {"accuracy": pytest.approx(200 / 3), "count": 3}
    with pytest.raises(ValueError):
        metrics.accuracy(["a"], [])


def test_confusion_matrix_rows_truth_columns_prediction_with_other():
    classes = ["river", "forest", "dense residential"]
    answers = ["river", "forest", "Dense Residential.", "forest", "a cat"]
    truths = ["river", "river", "dense residential", "forest", "forest"]
    labels, matrix = metrics.confusion_matrix(answers, truths, classes)
    assert labels == ["river", "forest", "dense residential", metrics.OTHER]
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    scores = metrics.classification_scores(answers, truths, classes)
    assert scores["score"] == pytest.approx(60.0) and scores["count"] == 5
    assert scores["per_class"]["forest"] == {"accuracy": 50.0, "count": 2}


def test_geochat_lrben_average_90_70_from_its_per_type_accuracies_and_test_counts():
    # GeoChat-7B on RSVQA-LR test: presence 91.09, comp 90.33, rural_urban 94.00; counts from DESIGN.md.
    per_type = {
        "presence": {"accuracy": 91.09, "count": 2955},
        "comp": {"accuracy": 90.33, "count": 4002},
        "rural_urban": {"accuracy": 94.00, "count": 100},
        "count": {"accuracy": 0.0, "count": 2947},  # excluded from the average
    }
    average = metrics.micro_average(per_type, metrics.LRBEN_AVERAGED)
    assert round(average, 2) == 90.70
    # the plain mean of the three would be 91.81: the published number is count-weighted
    assert round(metrics.macro_average(per_type, metrics.LRBEN_AVERAGED), 2) == 91.81


def test_lrben_scores_report_count_apart():
    answers = ["yes", "no", "3", "rural", "yes", "5"]
    truths = ["yes", "yes", "3", "rural", "no", "4"]
    types = ["presence", "presence", "count", "rural_urban", "comp", "count"]
    scores = metrics.lrben_scores(answers, truths, types)
    assert scores["per_type"]["presence"] == {"accuracy": 50.0, "count": 2}
    assert scores["per_type"]["count"] == {"accuracy": 50.0, "count": 2}
    assert scores["score"] == pytest.approx(50.0)  # (1 + 1 + 0) / 4 over presence + comp + rural_urban
    assert scores["average_count"] == 4 and scores["count_accuracy"] == 50.0


def test_unknown_normaliser_names_choices():
    with pytest.raises(ValueError, match="geochat, strict"):
        metrics.get_normalizer("fuzzy")
