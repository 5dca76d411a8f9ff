"""Benchmark metrics: pure functions over answers and ground truths (no files, no model).

GeoChat scores an answer by exact match after lowercasing and dropping spaces and periods, so
"Dense Residential." == "dense residential" == "denseresidential". The strict variant only lowercases
and trims, so a trailing period or a missing space counts as wrong. LRBEN's headline score is the
micro-average (count-weighted) over presence, comp and rural_urban; count questions are reported apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

LRBEN_AVERAGED = ("presence", "comp", "rural_urban")
OTHER = "(other)"


def normalize_geochat(text: str) -> str:
    """GeoChat's normalisation: lowercase, drop spaces and periods (outer whitespace trimmed too)."""
    return str(text).strip().lower().replace(" ", "").replace(".", "")


def normalize_strict(text: str) -> str:
    """Stricter: lowercase and trim only; punctuation and inner spacing must match."""
    return " ".join(str(text).lower().split())


NORMALIZERS: dict[str, Callable[[str], str]] = {"geochat": normalize_geochat, "strict": normalize_strict}


def get_normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(f"eval.normalize: unknown '{name}'; choose from {', '.join(NORMALIZERS)}") from None


def is_correct(answer: str, ground_truth: str, normalize: Callable[[str], str] = normalize_geochat) -> bool:
    return normalize(answer) == normalize(ground_truth)


def accuracy(answers: Sequence[str], truths: Sequence[str], normalize=normalize_geochat) -> float:
    """Percent of exact matches after ``normalize`` (0.0 for no questions)."""
    if len(answers) != len(truths):
        raise ValueError(f"{len(answers)} answers for {len(truths)} ground truths")
    if not answers:
        return 0.0
    return 100.0 * sum(is_correct(a, t, normalize) for a, t in zip(answers, truths, strict=True)) / len(answers)


def accuracy_by(answers: Sequence[str], truths: Sequence[str], groups: Sequence[str], normalize=normalize_geochat) -> dict[str, dict]:
    """Per group (class or question type): ``{"accuracy": percent, "count": n}``, groups sorted."""
    hits, counts = Counter(), Counter()
    for answer, truth, group in zip(answers, truths, groups, strict=True):
        counts[group] += 1
        hits[group] += is_correct(answer, truth, normalize)
    return {g: {"accuracy": 100.0 * hits[g] / counts[g], "count": counts[g]} for g in sorted(counts)}


def micro_average(per_group: Mapping[str, Mapping[str, float]], groups: Iterable[str]) -> float:
    """Count-weighted mean of per-group accuracies over ``groups`` (those absent are left out)."""
    present = [g for g in groups if g in per_group and per_group[g]["count"]]
    total = sum(per_group[g]["count"] for g in present)
    if not total:
        return 0.0
    return sum(per_group[g]["accuracy"] * per_group[g]["count"] for g in present) / total


def macro_average(per_group: Mapping[str, Mapping[str, float]], groups: Iterable[str]) -> float:
    present = [g for g in groups if g in per_group and per_group[g]["count"]]
    return sum(per_group[g]["accuracy"] for g in present) / len(present) if present else 0.0


def classification_scores(answers, truths, classes: Sequence[str], normalize=normalize_geochat) -> dict:
    """Overall and per-class accuracy plus the confusion matrix (rows truth, columns prediction).

    Predictions that name no class land in a last ``(other)`` column.
    """
    by_norm = {normalize(c): c for c in classes}
    per_class = accuracy_by(answers, truths, [by_norm.get(normalize(t), t) for t in truths], normalize)
    labels, matrix = confusion_matrix(answers, truths, classes, normalize)
    return {
        "score": accuracy(answers, truths, normalize),
        "accuracy": accuracy(answers, truths, normalize),
        "count": len(answers),
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
    }


def confusion_matrix(answers, truths, classes: Sequence[str], normalize=normalize_geochat) -> tuple[list[str], np.ndarray]:
    """``(labels, matrix)``: ``matrix[i, j]`` = questions of class ``labels[i]`` answered ``labels[j]``."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    labels = list(dict.fromkeys(list(classes) + sorted(set(truths) - set(classes))))
    by_norm = {normalize(c): c for c in labels}
    predicted = [by_norm.get(normalize(a), OTHER) for a in answers]
    truth_labels = [by_norm.get(normalize(t), t) for t in truths]
    columns = labels + [OTHER]
    matrix = sk_confusion(truth_labels, predicted, labels=columns)
    return columns, matrix[: len(labels)]


def lrben_scores(answers, truths, types, normalize=normalize_geochat) -> dict:
    """LRBEN per type, the micro-average over presence + comp + rural_urban, and count apart."""
    per_type = accuracy_by(answers, truths, types, normalize)
    average = micro_average(per_type, LRBEN_AVERAGED)
    return {
        "score": average,
        "average": average,
        "average_count": sum(per_type[t]["count"] for t in LRBEN_AVERAGED if t in per_type),
        "macro_average": macro_average(per_type, LRBEN_AVERAGED),
        "count_accuracy": per_type.get("count", {}).get("accuracy"),
        "per_type": per_type,
        "count": len(answers),
    }
