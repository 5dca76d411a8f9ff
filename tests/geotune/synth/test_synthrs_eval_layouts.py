"""The eval readers on SynthRS (geotune.synth, the app's: so this test lives here, not in tests/eval), which writes the real layouts with the published defects."""

from eval.geochat_bench import read_geochat_bench
from eval.readers import read_aid, read_lrben, read_ucmerced


def test_raw_layouts_and_geochat_bench_agree(synthrs_defects):
    synthrs = synthrs_defects
    ucm, aid, lrben = read_ucmerced(synthrs), read_aid(synthrs), read_lrben(synthrs)
    assert len(ucm.classes) == 21 and len(aid.classes) == 30
    bench_ucm = read_geochat_bench(synthrs / "GeoChat-Bench" / "UCmerced.jsonl", "ucmerced", synthrs)
    bench_aid = read_geochat_bench(synthrs / "GeoChat-Bench" / "aid.jsonl", "aid", synthrs)
    bench_lr = read_geochat_bench(synthrs / "GeoChat-Bench" / "lrben.jsonl", "lrben", synthrs)
    assert len(bench_ucm) == len(ucm) and sum(bench_ucm.repairs.values()) == 0
    # 30 % of each class in both (which images differs: each side draws with its own seed)
    assert len(bench_aid) == len(aid)
    assert sorted(i.category for i in bench_aid.items) == sorted(i.category for i in aid.items)
    # every published defect repaired and counted, once per row
    n = len(bench_aid)
    assert bench_aid.repairs == {"image_png_to_jpg": n, "aid_ground_truth_stray_chars": n, "ground_truth_camelcase": n}
    assert bench_lr.repairs == {"ground_truth_from_rsvqa": len(bench_lr)}
    raw = {i.question_id: (i.ground_truth, i.category, i.image_path) for i in lrben.items}
    assert {i.question_id: (i.ground_truth, i.category, i.image_path) for i in bench_lr.items} == raw
