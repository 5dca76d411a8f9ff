import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.multiprocess
def test_two_processes_shard_questions_and_merge(tiny_internvl, bench_root, tmp_path, free_port):
    worker = Path(__file__).with_name("shard_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # torchrun sets the same environment `accelerate launch` does; accelerate's PartialState reads it (gloo on CPU).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(worker), str(tiny_internvl), str(bench_root), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)  # catches a hang only
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"result.rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert sorted(r["answered"] for r in ranks) == [4, 5]  # 9 questions split, none twice
    assert ranks[0]["count"] == ranks[1]["count"] == 9 and ranks[0]["score"] == ranks[1]["score"]
    rows = [json.loads(line) for line in (tmp_path / "ucmerced.predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and len({r["question_id"] for r in rows}) == 9
    assert not list(tmp_path.glob("*.rank*.jsonl")) and (tmp_path / "ucmerced.json").exists()
    alone = json.loads((tmp_path / "main_only.json").read_text())  # rank 0 alone, shard=False: no hang
    assert alone == {"count": 9, "score": ranks[0]["score"]}
