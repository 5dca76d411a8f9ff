import numpy as np
import pytest

from selection.features import extract_features, feature_cache_entry, load_report
from selection.features.store import run_sharded, shard_ranges


class Killed(RuntimeError):
    pass


def test_run_sharded_merges_in_order_and_sums_stats(tmp_path):
    calls = []

    def compute(lo, hi):
        calls.append((lo, hi))
        return np.arange(lo, hi, dtype=np.float32)[:, None] * [1, 2], {"odd": sum(i % 2 for i in range(lo, hi))}

    out = run_sharded(tmp_path / "e", 7, 3, compute)
    assert calls == [(0, 3), (3, 6), (6, 7)] == shard_ranges(7, 3)
    assert isinstance(out, np.memmap) and out.dtype == np.float16
    assert out[:, 1].tolist() == [0, 2, 4, 6, 8, 10, 12]
    report = load_report(out)
    assert report["odd"] == 3 and report["rows"] == 7 and report["shards"] == 3
    assert not (tmp_path / "e" / "shards").exists()


def test_resume_after_kill_computes_only_remaining_shards(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool  # 10 records, shard_size 4 -> shards 0, 1, 2
    cfg = features_cfg("reference", layers=[0, 1])
    uninterrupted = np.array(extract_features(records, data, cfg, model_cfg, tmp_path / "a"))

    def kill_after_shard_1(k):
        if k == 1:
            raise Killed

    with pytest.raises(Killed):
        extract_features(records, data, cfg, model_cfg, tmp_path / "b", on_shard_done=kill_after_shard_1)
    entry = feature_cache_entry(records, data, cfg, model_cfg, tmp_path / "b")
    assert sorted(p.name for p in (entry / "shards").glob("*.done")) == ["shard-00000.done", "shard-00001.done"]

    computed = []
    resumed = extract_features(records, data, cfg, model_cfg, tmp_path / "b", on_shard_done=computed.append)
    assert computed == [2]
    assert np.array_equal(np.array(resumed), uninterrupted)


def test_second_call_is_a_cache_hit(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    cfg = features_cfg("target", layers=[0, 1])
    first = np.array(extract_features(records, data, cfg, model_cfg, tmp_path))
    computed = []
    second = extract_features(records, data, cfg, model_cfg, tmp_path, on_shard_done=computed.append)
    assert computed == [] and np.array_equal(first, second)
    # a different record set is a different cache entry
    other = extract_features(records[:5], data, cfg, model_cfg, tmp_path, on_shard_done=computed.append)
    assert computed == [0, 1] and np.array_equal(np.array(other), first[:5])


def test_batched_equals_per_sample(pool, model_cfg, features_cfg, tmp_path):
    """Length-sorted, left-padded batches of 8 vs one sample per forward (the target backend's pooling
    is checked against HF's hidden states in test_target.py)."""
    records, data = pool
    batched = extract_features(records, data, features_cfg("reference", batch_size=8), model_cfg, tmp_path / "a")
    single = extract_features(records, data, features_cfg("reference", batch_size=1), model_cfg, tmp_path / "b")
    np.testing.assert_allclose(batched.astype(np.float32), single.astype(np.float32), atol=2e-3)


def test_cache_key_follows_answers_images_and_model(tmp_path, tiny_internvl, model_cfg, features_cfg):
    """No mocks: real images on disk, the real feature extractor; stale features must never be reused."""
    import copy
    import shutil

    from colours import write_colour_set

    data = write_colour_set(tmp_path / "images", per_class=2)  # 6 records, shard_size 4: 2 shards
    cfg = features_cfg("reference", layers=[0, 1])
    computed = []
    first = np.array(extract_features(data.records, data, cfg, model_cfg, tmp_path / "c", on_shard_done=computed.append))
    assert computed == [0, 1]

    edited = copy.deepcopy(data.records)
    edited[0].conversations[1]["value"] = "crimson"  # the answer changes, ids and images do not
    computed.clear()
    again = np.array(extract_features(edited, data, cfg, model_cfg, tmp_path / "c", on_shard_done=computed.append))
    assert computed == [0, 1] and not np.array_equal(again[0], first[0]) and np.array_equal(again[1:], first[1:])

    # the same pool regenerated into the same folder, with other pixels (SynthRS at another seed)
    from PIL import Image

    path = data.image_path(data.records[2])
    Image.new("RGB", Image.open(path).size, (250, 250, 0)).save(path)
    computed.clear()
    regenerated = np.array(extract_features(data.records, data, cfg, model_cfg, tmp_path / "c", on_shard_done=computed.append))
    assert computed == [0, 1] and not np.array_equal(regenerated[2], first[2])

    # new weights at the same model path
    other_model = tmp_path / "model"
    shutil.copytree(tiny_internvl, other_model)
    moved_cfg = copy.copy(model_cfg)
    moved_cfg.path = str(other_model)
    entry = feature_cache_entry(data.records, data, cfg, moved_cfg, tmp_path / "c")
    weights = next(other_model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # rewritten: a new mtime
    assert feature_cache_entry(data.records, data, cfg, moved_cfg, tmp_path / "c") != entry
