"""RSITMD/RSICD readers: the layouts, HarMA's caption cleaning, file:line errors, path confinement."""

import json

import pytest

from finetune.retrieval.data import RetrievalDataError, pre_caption, read_eval_split, read_train_pairs


def test_pre_caption_is_harmas():
    assert pre_caption("Many  GREEN trees, near a Car-park/road!  ") == "many green trees near a car park road"
    assert pre_caption(" ".join(["w"] * 40)) == " ".join(["w"] * 30)


def _write(tmp_path, rows, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows, indent=1))
    (tmp_path / "a.png").write_bytes(b"")
    return path


def test_bad_rows_name_file_and_line(tmp_path):
    path = _write(tmp_path, [{"caption": "ok", "image": "a.png", "image_id": 1}, {"caption": "", "image": "a.png",
                                                                                   "image_id": 1}])
    with pytest.raises(RetrievalDataError, match=r"train\.json:7 \(index 1\): caption must be a non-empty"):
        read_train_pairs(path, str(tmp_path))
    path = _write(tmp_path, [{"caption": "x", "image": "../etc/passwd", "image_id": 1}])
    with pytest.raises(RetrievalDataError, match="leaves the image root"):
        read_train_pairs(path, str(tmp_path))
    path = _write(tmp_path, [{"caption": "x", "image": "a.png", "image_id": 1},
                             {"caption": "y", "image": "b.png", "image_id": 1}])
    with pytest.raises(RetrievalDataError, match="image_id 1 is used for 'a.png' and 'b.png'"):
        read_train_pairs(path, str(tmp_path))
    path = _write(tmp_path, [{"caption": "x", "image": "missing.png", "image_id": 1}])
    with pytest.raises(RetrievalDataError, match="1 train image.*missing.png.*harma.image_root"):
        read_train_pairs(path, str(tmp_path))


def test_a_train_file_given_as_test_split_is_explained(tmp_path):
    path = _write(tmp_path, [{"caption": "x", "image": "a.png", "image_id": 1}], "test.json")
    with pytest.raises(RetrievalDataError, match="is a train file"):
        read_eval_split(path, str(tmp_path))


def test_a_symlink_out_of_the_image_root_is_refused_by_file_and_line(tmp_path):
    """The same confinement as the instruction formats (finetune/data/images.py): real paths, not names."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    path = _write(root, [{"caption": "x", "image": "linked/secret.png", "image_id": 1}])
    with pytest.raises(RetrievalDataError, match=r"train\.json:\d+.*outside the image root"):
        read_train_pairs(path, str(root))


def test_images_are_read_by_the_one_reader_16_bit_tiff_stretched(tmp_path):
    """A 16-bit TIFF through the retrieval dataset equals finetune's reader (per-band stretch), not PIL's
    convert("RGB"), which turns 16-bit data near-white."""
    import numpy as np
    import tifffile

    from finetune.data.images import read_image
    from finetune.retrieval.data import PairDataset

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 4096, (16, 16, 3), dtype=np.uint16))
    path = _write(tmp_path, [{"caption": "x", "image": "a.tif", "image_id": 1}])
    dataset = PairDataset(read_train_pairs(path, str(tmp_path)), transform=np.asarray)
    assert np.array_equal(dataset[0][0], np.asarray(read_image(tmp_path / "a.tif")))
