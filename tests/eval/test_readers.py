import json

import eval_layouts as layouts
import pytest

from eval.geochat_bench import match_class, read_geochat_bench
from eval.readers import read_aid, read_lrben, read_rsvqa_answers, read_ucmerced, spaced_name, subset


def test_spaced_names_as_prompts_write_them():
    assert spaced_name("denseresidential") == "dense residential"
    assert spaced_name("mobilehomepark") == "mobile home park"
    assert spaced_name("DenseResidential") == "dense residential"
    assert spaced_name("RailwayStation") == "railway station"
    assert spaced_name("river") == "river"


def test_ucmerced_layout(bench_root):
    bench = read_ucmerced(bench_root)
    assert len(bench) == 9 and bench.task == "classification"
    assert bench.classes == ["agricultural", "dense residential", "river"]
    item = bench.items[3]
    assert item.question_id == "denseresidential/denseresidential00"
    assert item.ground_truth == "dense residential" and item.category == "denseresidential"
    assert item.image_path.endswith("UCMerced_LandUse/Images/denseresidential/denseresidential00.tif")
    # the UCMerced_LandUse folder itself works as the root too
    assert len(read_ucmerced(bench_root / "UCMerced_LandUse")) == 9


def test_aid_takes_exactly_30_percent_of_each_class_seeded(bench_root):
    bench = read_aid(bench_root, seed=0)
    per_class = {}
    for item in bench.items:
        per_class[item.category] = per_class.get(item.category, 0) + 1
    assert per_class == {"Airport": 3, "BareLand": 3, "DenseResidential": 3}
    assert [i.question_id for i in read_aid(bench_root, seed=0).items] == [i.question_id for i in bench.items]
    assert [i.question_id for i in read_aid(bench_root, seed=1).items] != [i.question_id for i in bench.items]
    assert bench.items[0].image_path.endswith(".jpg") and bench.items[0].ground_truth == "airport"


def test_limit_is_a_seeded_subset_in_order():
    items = list(range(20))
    assert subset(items, None) == items
    picked = subset(items, 5, seed=3)
    assert len(picked) == 5 and picked == sorted(picked) and picked == subset(items, 5, seed=3)
    with pytest.raises(ValueError):
        subset(items, -1)


@pytest.mark.parametrize("text_in_split", [True, False], ids=["text-in-split", "ids-plus-all-json"])
def test_rsvqa_both_layouts_keep_active_only(tmp_path, text_in_split):
    layouts.write_rsvqa(tmp_path, text_in_split=text_in_split)
    bench = read_lrben(tmp_path)
    assert [i.question_id for i in bench.items] == [str(q) for q in layouts.RSVQA_ACTIVE_IDS]
    assert bench.repairs["inactive_question"] == 1
    assert bench.repairs["question_without_active_answer"] == 1
    first = bench.items[0]
    assert (first.question, first.ground_truth, first.category) == ("Is there a road?", "yes", "presence")
    assert first.image_path.endswith("RSVQA_LR/Images_LR/0.tif")
    answers = read_rsvqa_answers(tmp_path / "RSVQA_LR" / "LR_split_test_answers.json")
    assert answers["7"] == "12" and str(layouts.INACTIVE_ANSWER) not in answers


def test_rsvqa_missing_split_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="LR_split_test_questions.json"):
        read_lrben(tmp_path)


def test_match_class_repairs_stray_characters():
    classes = ("Airport", "DenseResidential", "Parking", "Park")
    assert match_class("DenseResidential", classes) == ("DenseResidential", [])
    assert match_class("DenseResidential\n\n", classes) == ("DenseResidential", ["aid_ground_truth_stray_chars"])
    assert match_class("Airportab", classes) == ("Airport", ["aid_ground_truth_stray_chars"])
    assert match_class("Parking", classes) == ("Parking", [])
    assert match_class("Harbor", classes) == (None, [])


def test_geochat_bench_aid_defects_repaired_and_counted(bench_root):
    bench = read_geochat_bench(bench_root / "GeoChat-Bench" / "aid.jsonl", "aid", bench_root / "AID")
    assert len(bench) == 6
    assert all(i.image_path.endswith(".jpg") for i in bench.items)
    assert [i.ground_truth for i in bench.items[:2]] == ["airport", "airport"]
    assert {i.category for i in bench.items} == {"Airport", "BareLand", "DenseResidential"}
    assert bench.repairs == {"image_png_to_jpg": 6, "aid_ground_truth_stray_chars": 6, "ground_truth_camelcase": 6}
    assert len(bench.classes) == 30 and "bare land" in bench.classes


def test_geochat_bench_ucmerced_reads_clean(bench_root):
    bench = read_geochat_bench(bench_root / "GeoChat-Bench" / "UCmerced.jsonl", "ucmerced", bench_root)
    assert len(bench) == 6 and sum(bench.repairs.values()) == 0
    assert bench.items[2].ground_truth == "dense residential"
    assert bench.items[0].question.startswith("Classify the given image")


def test_geochat_bench_lrben_ground_truth_rebuilt_from_rsvqa(bench_root):
    bench = read_geochat_bench(bench_root / "GeoChat-Bench" / "lrben.jsonl", "lrben", bench_root / "RSVQA_LR")
    assert [(i.question_id, i.ground_truth, i.category) for i in bench.items][:2] == [("0", "yes", "presence"), ("1", "no", "comp")]
    assert bench.repairs == {"ground_truth_from_rsvqa": 6}


def test_geochat_bench_missing_images_are_skipped_and_counted(tmp_path, bench_root):
    path = tmp_path / "UCmerced.jsonl"
    rows = [{"question_id": 0, "image": "river/river00.tif", "text": "q", "ground_truth": "river"},
            {"question_id": 1, "image": "river/river99.tif", "text": "q", "ground_truth": "river"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = read_geochat_bench(path, "ucmerced", bench_root)
    assert len(bench) == 1 and bench.repairs["skipped_missing_image"] == 1


def test_geochat_bench_bad_line_names_file_and_line(tmp_path, bench_root):
    path = tmp_path / "aid.jsonl"
    path.write_text('{"question_id": 0, "image": "a.jpg", "text": "t", "ground_truth": "Airport"}\n{oops\n')
    with pytest.raises(ValueError, match=r"aid.jsonl:2"):
        read_geochat_bench(path, "aid", bench_root)
