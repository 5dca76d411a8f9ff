"""Scoring prediction rows, ours or GeoChat's published output files.

GeoChat writes one JSON per line with ``question_id`` and ``answer``, plus ``ground_truth`` for scene
classification and ``category`` (the question type) for LRBEN, whose files carry no ground truth: it is
rebuilt from the RSVQA answers JSON. The same ground-truth repairs as for GeoChat-Bench question
files apply (aid's CamelCase with 2 stray characters) and are counted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from eval import metrics
from eval.geochat_bench import BENCH_CLASSES, read_jsonl, repair_ground_truth
from eval.readers import read_rsvqa_answers, read_rsvqa_types, spaced_name


def score_rows(task: str, rows: list[dict], classes: list[str], normalize: str = "geochat") -> dict:
    """Metrics for rows with ``answer``, ``ground_truth`` and (VQA) ``category``.

    ``score`` is the headline (classification: accuracy; VQA: the LRBEN micro-average) under
    ``normalize``; ``score_<other>`` is the same under the other normalisation.
    """
    answers = [str(r["answer"]) for r in rows]
    truths = [str(r["ground_truth"]) for r in rows]
    headline, other = metrics.get_normalizer(normalize), "strict" if normalize == "geochat" else "geochat"
    if task == "vqa":
        types = [str(r.get("category", "")) for r in rows]
        result = metrics.lrben_scores(answers, truths, types, headline)
        result[f"score_{other}"] = metrics.lrben_scores(answers, truths, types, metrics.get_normalizer(other))["score"]
    else:
        result = metrics.classification_scores(answers, truths, classes or sorted(set(truths)), headline)
        result[f"score_{other}"] = metrics.accuracy(answers, truths, metrics.get_normalizer(other))
    return result


def _sibling_questions(answers: Path) -> Path:
    name = answers.name.replace("answers", "questions")
    return answers.with_name(name)


def score_predictions_file(bench: str, path: str | Path, answers: str | Path | None = None,
                           questions: str | Path | None = None, normalize: str = "geochat") -> dict:
    """Score a predictions jsonl for ``bench``; rows that cannot be scored are skipped and counted.

    Args:
        answers: lrben: RSVQA answers JSON giving the ground truth of rows without one.
        questions: lrben: RSVQA questions JSON giving the type of rows without ``category``
            (default: the questions file beside ``answers``).
    """
    path = Path(path)
    rows = read_jsonl(path)
    repairs: Counter = Counter()
    truth_by_id = read_rsvqa_answers(answers) if answers else {}
    types_by_id = {}
    if bench == "lrben" and answers:
        q_path = Path(questions) if questions else _sibling_questions(Path(answers))
        types_by_id = read_rsvqa_types(q_path) if q_path.exists() else {}
    scored = []
    for line_no, row in enumerate(rows, 1):
        if "question_id" not in row or "answer" not in row:
            raise ValueError(f"{path}:{line_no}: a prediction needs 'question_id' and 'answer'")
        fixed = _repair_row(bench, dict(row), truth_by_id, types_by_id, repairs)
        if fixed is not None:
            scored.append(fixed)
    if rows and not scored:
        hint = " (pass --answers RSVQA answers JSON)" if bench == "lrben" and not answers else ""
        raise ValueError(f"{path}: none of {len(rows)} predictions could be scored: {dict(repairs)}{hint}")
    task = "vqa" if bench == "lrben" else "classification"
    classes = [spaced_name(c) for c in BENCH_CLASSES.get(bench, ())]
    result = score_rows(task, scored, classes, normalize)
    result.update({"benchmark": bench, "predictions": str(path), "n_rows": len(rows), "repairs": dict(repairs),
                   "normalize": normalize})
    return result


def _repair_row(bench: str, row: dict, truth_by_id: dict, types_by_id: dict, repairs: Counter) -> dict | None:
    qid = str(row["question_id"])
    if bench == "lrben":
        if row.get("ground_truth") is None:
            if qid not in truth_by_id:
                repairs["skipped_no_ground_truth"] += 1
                return None
            row["ground_truth"] = truth_by_id[qid]
            repairs["ground_truth_from_rsvqa"] += 1
        if not row.get("category"):
            row["category"] = row.get("type") or types_by_id.get(qid)
            repairs["type_from_rsvqa" if row["category"] else "type_unknown"] += 1
            row["category"] = row["category"] or "unknown"
        return row
    truth = row.get("ground_truth")
    if truth is None:
        repairs["skipped_no_ground_truth"] += 1
        return None
    cls = repair_ground_truth(str(truth), bench, repairs)
    if cls is None:
        repairs["unknown_ground_truth_kept"] += 1
        return row
    row["ground_truth"] = spaced_name(cls)
    return row
