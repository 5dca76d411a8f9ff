"""``train.py`` end to end on a recipe file: data loader, manifest filter, final/ and train_summary.json."""

from __future__ import annotations

import json

from colours import write_colour_set

import train
from finetune.data.formats import write_llava
from selection.manifest import FORMAT, write_manifest


def test_train_py_runs_a_recipe_with_a_manifest(tiny_internvl, tmp_path):
    data = write_colour_set(tmp_path / "colours")
    write_llava(data.records, tmp_path / "colours" / "train.json")
    manifest = tmp_path / "manifest.jsonl"
    kept = [r.id for r in data.records[::2]]
    write_manifest(manifest, {"format": FORMAT, "method": "by_hand", "n_kept": len(kept)},
                   [{"id": i, "cluster": 0, "score": 1.0, "rank_in_cluster": k} for k, i in enumerate(kept)])
    recipe = tmp_path / "colours.yaml"
    recipe.write_text(f"""
model: {{path: {tiny_internvl}, adapter: internvl_hf}}
data:
  datasets:
    - {{name: colours, path: {tmp_path}/colours/train.json, format: llava, image_root: {tmp_path}/colours}}
  cache_dir: {tmp_path}/cache
selection: {{manifest: {manifest}}}
train: {{max_steps: 3, per_device_batch_size: 2, report_to: [tensorboard], logging_steps: 1, save_steps: 2}}
""")
    run_dir = tmp_path / "run"
    assert train.main([f"recipe={recipe}", f"run_dir={run_dir}"]) == 0
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["records_in_pool"] == 12 and summary["records_selected"] == summary["samples_kept"] == 6
    assert summary["steps"] == 3 and summary["samples_seen"] == 6 and summary["tokens"] > 0
    assert 0 <= summary["padding_share"] < 1 and summary["final_loss"] == summary["losses"][-1]
    assert summary["skipped"] == {"data": {}, "encode": {}} and summary["truncated"] == 0
    assert (run_dir / "final" / "adapter_model.safetensors").exists()
    assert (run_dir / "final" / "processor_config.json").exists() and (run_dir / "config.yaml").exists()
    assert list((run_dir / "runs").rglob("events.out.tfevents.*"))  # tensorboard
