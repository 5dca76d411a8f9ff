import json

import pytest

from geotune.cli import main


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_geotune_eval_score_ucmerced_hand_written(tmp_path, capsys):
    preds = _write_jsonl(tmp_path / "ucm.jsonl", [
        {"question_id": 0, "answer": "Dense Residential.", "ground_truth": "denseresidential"},
        {"question_id": 1, "answer": "river", "ground_truth": "river"},
        {"question_id": 2, "answer": "forest", "ground_truth": "river"},
        {"question_id": 3, "answer": "golf course", "ground_truth": "golfcourse"},
    ])
    out = tmp_path / "score.json"
    assert main(["eval", "score", "--bench", "ucmerced", "--predictions", str(preds), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # ground truths become the spaced class names, so strict matching only fails "Dense Residential."
    assert result["score"] == 75.0 and result["score_strict"] == 50.0 and result["count"] == 4
    assert result["per_class"]["river"] == {"accuracy": 50.0, "count": 2}
    assert "ucmerced: 75.00" in capsys.readouterr().out


def test_geotune_eval_score_aid_repairs_published_ground_truth(tmp_path):
    preds = _write_jsonl(tmp_path / "aid.jsonl", [
        {"question_id": "a", "answer": "bare land", "ground_truth": "BareLand\n\n"},
        {"question_id": "b", "answer": "airport", "ground_truth": "Airportxy"},
    ])
    out = tmp_path / "score.json"
    assert main(["eval", "score", "--bench", "aid", "--predictions", str(preds), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["score"] == 100.0
    assert result["repairs"] == {"aid_ground_truth_stray_chars": 2, "ground_truth_camelcase": 2}


def test_geotune_eval_score_lrben_rebuilds_ground_truth_from_answers(tmp_path, bench_root, capsys):
    answers = bench_root / "RSVQA_LR" / "LR_split_test_answers.json"
    preds = _write_jsonl(tmp_path / "lrben.jsonl", [
        {"question_id": 0, "answer": "Yes", "category": "presence"},  # truth yes
        {"question_id": 1, "answer": "yes", "category": "comp"},      # truth no
        {"question_id": 3, "answer": "rural", "category": "rural_urban"},
        {"question_id": 2, "answer": "3"},                            # type from the questions file: count
        {"question_id": 99, "answer": "yes", "category": "presence"},  # not in the answers: skipped, counted
    ])
    out = tmp_path / "score.json"
    assert main(["eval", "score", "--bench", "lrben", "--predictions", str(preds), "--answers", str(answers),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["per_type"]["count"] == {"accuracy": 100.0, "count": 1}
    assert result["score"] == pytest.approx(200 / 3) and result["average_count"] == 3
    assert result["repairs"] == {"ground_truth_from_rsvqa": 4, "skipped_no_ground_truth": 1, "type_from_rsvqa": 1}


def test_geotune_eval_score_without_answers_says_what_to_pass(tmp_path):
    preds = _write_jsonl(tmp_path / "lrben.jsonl", [{"question_id": 0, "answer": "yes", "category": "presence"}])
    with pytest.raises(ValueError, match="--answers"):
        main(["eval", "score", "--bench", "lrben", "--predictions", str(preds)])


def _fake_run(root, name, *, train_seconds, ucm, lrben=None, selection=True):
    run = root / name
    (run / "final" / "eval").mkdir(parents=True)
    (run / "train_summary.json").write_text(json.dumps(
        {"train_seconds": train_seconds, "samples_seen": 300, "records_selected": 100, "records_in_pool": 300}))
    (run / "final" / "eval" / "ucmerced.json").write_text(json.dumps({"score": ucm}))
    if lrben is not None:
        per_type = {"presence": {"accuracy": 80.0, "count": 10}, "count": {"accuracy": 20.0, "count": 5}}
        (run / "final" / "eval" / "lrben.json").write_text(json.dumps({"score": lrben, "per_type": per_type}))
    if selection:
        (run / "selection").mkdir()
        header = {"format": "geotune.selection.manifest/1", "method": "adaptive_shift", "n_total": 300, "n_kept": 100}
        (run / "selection" / "manifest.jsonl").write_text(json.dumps(header) + "\n" + json.dumps({"id": "x"}) + "\n")
        (run / "selection" / "timings.json").write_text(json.dumps({"features": 1.5, "cluster": 0.5, "note": "s"}))
    return run


def test_compare_two_runs_table_and_plots(tmp_path, capsys):
    third = _fake_run(tmp_path, "rs_third", train_seconds=60.0, ucm=50.0, lrben=75.5)
    full = _fake_run(tmp_path, "rs_full", train_seconds=180.0, ucm=55.25, selection=False)
    (full / "final" / "eval" / "aid.json").write_text("{not json")
    out = tmp_path / "cmp"
    assert main(["compare", str(full), str(third), "--out", str(out)]) == 0
    table = (out / "compare.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| rs_")]
    assert lines[0].startswith("| rs_full | — | 100 | 300 | 300 | 180.0 | — | 55.25 | — | — |")
    assert lines[1].startswith("| rs_third | adaptive_shift | 100 | 300 | 300 | 60.0 | 2.0 | 50.00 | — | 75.50 | 80.00 |")
    assert "aid.json: unreadable" in table
    for png in ("scores.png", "cost.png"):
        assert (out / png).stat().st_size > 1000
    assert "rs_third" in capsys.readouterr().out


def test_compare_never_crashes_on_an_empty_or_missing_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(tmp_path / "missing"), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| empty | — | — |" in table and "missing: not a directory" in table
