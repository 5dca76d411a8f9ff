import json

import pytest

from eval import runners
from eval.geochat_bench import read_geochat_bench
from eval.readers import read_aid, read_lrben, read_ucmerced


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_ucmerced_writes_predictions_result_and_confusion(tmp_path, bench_root, tiny_loaded):
    model, processor, adapter = tiny_loaded
    bench = read_ucmerced(bench_root)
    result = runners.run_benchmark("ucmerced", model, processor, bench, adapter=adapter, batch_size=9, out_dir=tmp_path, max_new_tokens=1)
    rows = _lines(tmp_path / "ucmerced.predictions.jsonl")
    assert sorted(r["question_id"] for r in rows) == sorted(i.question_id for i in bench.items)
    assert {"question_id", "image", "question", "answer", "ground_truth", "category"} <= set(rows[0])
    assert rows[0]["question"].startswith("Classify the given image in one of the following classes. Classes: "
                                          "agricultural, dense residential, river. \nAnswer")
    saved = json.loads((tmp_path / "ucmerced.json").read_text())
    assert saved["n_questions"] == result["count"] == 9
    assert saved["score"] == result["score"] and 0.0 <= saved["score"] <= 100.0
    assert set(saved["per_class"]) == {"agricultural", "dense residential", "river"}
    assert (tmp_path / "ucmerced.confusion.png").stat().st_size > 1000
    assert "score_strict" in saved and saved["resumed_from"] == 0


def test_run_aid_and_lrben_counts(tmp_path, bench_root, tiny_loaded):
    model, processor, adapter = tiny_loaded
    aid = runners.run_benchmark("aid", model, processor, read_aid(bench_root), adapter=adapter, batch_size=9, out_dir=tmp_path, max_new_tokens=1)
    assert aid["count"] == 9
    lrben = runners.run_benchmark("lrben", model, processor, read_lrben(bench_root), adapter=adapter, batch_size=6, out_dir=tmp_path,
                              max_new_tokens=1)
    assert lrben["count"] == 6 and lrben["average_count"] == 4
    assert {t: v["count"] for t, v in lrben["per_type"].items()} == {"comp": 1, "count": 2, "presence": 2, "rural_urban": 1}
    row = _lines(tmp_path / "lrben.predictions.jsonl")[0]
    assert row["question"].endswith("? Answer the question using a single word or phrase.")


def test_limit_and_custom_prompt_in_memory(bench_root, tiny_loaded):
    model, processor, adapter = tiny_loaded
    result = runners.run_benchmark("ucmerced", model, processor, read_ucmerced(bench_root), adapter=adapter, limit=4, out_dir=None,
                                  max_new_tokens=1, classification_prompt="Which of {classes}?")
    assert result["count"] == 4 and result["prompt"] == "Which of agricultural, dense residential, river?"


def test_geochat_bench_items_run_with_repairs_in_result(tmp_path, bench_root, tiny_loaded):
    model, processor, adapter = tiny_loaded
    bench = read_geochat_bench(bench_root / "GeoChat-Bench" / "aid.jsonl", "aid", bench_root)
    result = runners.run_benchmark("aid", model, processor, bench, adapter=adapter, batch_size=6, out_dir=tmp_path, max_new_tokens=1)
    assert result["repairs"]["image_png_to_jpg"] == 6 and result["count"] == 6


def test_killed_eval_resumes_to_the_same_result(tmp_path, bench_root, tiny_loaded, monkeypatch):
    model, processor, adapter = tiny_loaded
    bench = read_ucmerced(bench_root)
    kwargs = dict(adapter=adapter, batch_size=2, max_new_tokens=3, limit=6)
    full = runners.run_benchmark("ucmerced", model, processor, bench, out_dir=tmp_path / "full", **kwargs)

    real, calls = runners.generate_batch, []

    def dies_after_one_batch(*args, **kw):
        if len(calls) == 1:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(runners, "generate_batch", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        runners.run_benchmark("ucmerced", model, processor, bench, out_dir=tmp_path / "killed", **kwargs)
    partial = tmp_path / "killed" / "ucmerced.predictions.jsonl"
    assert len(_lines(partial)) == 2 and not (tmp_path / "killed" / "ucmerced.json").exists()
    with open(partial, "a") as handle:  # the kill also cut a line short
        handle.write('{"question_id": "river/riv')
    monkeypatch.setattr(runners, "generate_batch", real)

    resumed = runners.run_benchmark("ucmerced", model, processor, bench, out_dir=tmp_path / "killed", **kwargs)
    assert resumed["resumed_from"] == 2 and resumed["dropped_partial_lines"] == 1
    by_id = lambda path: {r["question_id"]: r["answer"] for r in _lines(path)}  # noqa: E731
    assert by_id(partial) == by_id(tmp_path / "full" / "ucmerced.predictions.jsonl")
    for key in ("score", "score_strict", "per_class", "confusion", "count"):
        assert resumed[key] == full[key]


def test_finished_eval_reruns_without_generating(tmp_path, bench_root, tiny_loaded, monkeypatch):
    model, processor, adapter = tiny_loaded
    bench = read_lrben(bench_root)
    first = runners.run_benchmark("lrben", model, processor, bench, adapter=adapter, batch_size=6, out_dir=tmp_path, max_new_tokens=1)

    def must_not_generate(*args, **kwargs):
        raise AssertionError("everything was answered already")

    monkeypatch.setattr(runners, "generate_batch", must_not_generate)
    again = runners.run_benchmark("lrben", model, processor, bench, adapter=adapter, batch_size=6, out_dir=tmp_path, max_new_tokens=1)
    assert again["resumed_from"] == 6 and again["score"] == first["score"]


def test_predictions_from_other_settings_are_set_aside_not_resumed(tmp_path, bench_root, tiny_loaded):
    model, processor, adapter = tiny_loaded
    bench = read_lrben(bench_root)
    kwargs = dict(adapter=adapter, batch_size=6, out_dir=tmp_path)
    runners.run_benchmark("lrben", model, processor, bench, max_new_tokens=1, model_fingerprint="a", **kwargs)
    again = runners.run_benchmark("lrben", model, processor, bench, max_new_tokens=1, model_fingerprint="b", **kwargs)
    assert again["stale_predictions_set_aside"] == 6 and again["resumed_from"] == 0
    assert len(_lines(tmp_path / "lrben.predictions.stale.jsonl")) == 6
    assert len(_lines(tmp_path / "lrben.predictions.jsonl")) == 6
    same = runners.run_benchmark("lrben", model, processor, bench, max_new_tokens=1, model_fingerprint="b", **kwargs)
    assert same["stale_predictions_set_aside"] == 0 and same["resumed_from"] == 6
