"""``evaluate_checkpoint`` end to end on each remote-code family's stand-in checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
from recipe_sections import library_recipe

from eval import api
from eval.config import EvalConfig, check_values


def _predictions(path):
    return {row["question_id"]: row["answer"] for row in map(json.loads, path.read_text().splitlines())}


def _evaluate(family, remote_checkpoints, bench_root, tmp_path, batch_size):
    adapter, path = remote_checkpoints[family]
    ckpt = tmp_path / f"{family}-bs{batch_size}"
    shutil.copytree(path, ckpt)
    cfg = library_recipe(
        f"model.path={path}", f"model.adapter={adapter}", "model.trust_remote_code=true", "model.dtype=float32",
        "eval.benchmarks=[ucmerced,lrben]", f"eval.ucmerced_root={bench_root}", f"eval.lrben_root={bench_root}",
        "eval.limit=4", f"eval.batch_size={batch_size}", "eval.max_new_tokens=4", sections={"eval": (EvalConfig, check_values)},
    )
    results = api.evaluate_checkpoint(cfg, ckpt)
    return results, {name: _predictions(ckpt / "eval" / f"{name}.predictions.jsonl") for name in results}


@pytest.mark.parametrize("family", ["internvl_remote", "internvl_remote_internlm2", "xcomposer2"])
def test_evaluate_checkpoint_answers_every_question_as_one_prompt_at_a_time(family, remote_checkpoints, bench_root,
                                                                             tmp_path):
    results, batched = _evaluate(family, remote_checkpoints, bench_root, tmp_path, batch_size=4)
    assert {name: r["count"] for name, r in results.items()} == {"ucmerced": 4, "lrben": 4}
    # Before the fix, InternVLChatModel's new-tokens-only output was cut at the prompt length: every answer "".
    assert any(answer for answers in batched.values() for answer in answers.values())
    _, alone = _evaluate(family, remote_checkpoints, bench_root, tmp_path, batch_size=1)
    assert batched == alone
