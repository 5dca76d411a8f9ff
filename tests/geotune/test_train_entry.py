"""``train.py`` end to end on a recipe file: data loader, manifest filter, final/ and train_summary.json."""

from __future__ import annotations

import json

import train
from selection.manifest import FORMAT, write_manifest


def test_train_py_runs_a_recipe_with_a_manifest(colour_recipe, colour_data, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    kept = [r.id for r in colour_data.records[::2]]
    write_manifest(manifest, {"format": FORMAT, "method": "by_hand", "n_kept": len(kept)},
                   [{"id": i, "cluster": 0, "score": 1.0, "rank_in_cluster": k} for k, i in enumerate(kept)])
    recipe = colour_recipe(
        selection=f"{{manifest: {manifest}}}",
        train="{max_steps: 3, per_device_batch_size: 2, report_to: [tensorboard], logging_steps: 1, save_steps: 2}",
    )
    run_dir = tmp_path / "run"
    assert train.main([f"recipe={recipe}", f"run_dir={run_dir}"]) == 0
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["records_in_pool"] == 12 and summary["records_selected"] == summary["samples_kept"] == 6
    assert summary["steps"] == 3 and summary["samples_seen"] == 6 and summary["tokens"] > 0
    assert 0 <= summary["padding_share"] < 1 and summary["final_loss"] == summary["losses"][-1]
    assert 0 < summary["labelled_share"] < 1 and summary["supervised_logits"] is True
    assert summary["skipped"] == {"data": {}, "encode": {}} and summary["truncated"] == 0
    assert (run_dir / "final" / "adapter_model.safetensors").exists()
    assert (run_dir / "final" / "processor_config.json").exists() and (run_dir / "config.yaml").exists()
    assert list((run_dir / "runs").rglob("events.out.tfevents.*"))  # tensorboard
