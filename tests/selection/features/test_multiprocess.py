import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from finetune.distributed import process_state
    from selection.features.store import run_sharded

    state = process_state()
    out_dir = sys.argv[1]
    mine = []

    def compute(lo, hi):
        mine.append(lo)
        return np.arange(lo, hi, dtype=np.float32)[:, None].repeat(2, 1), {"n": hi - lo}

    values = run_sharded(__import__("pathlib").Path(out_dir) / "entry", 10, 3, compute)
    with open(os.path.join(out_dir, f"rank{state.process_index}.json"), "w") as f:
        json.dump({"computed": mine, "first_col": np.asarray(values[:, 0]).tolist(),
                   "local_rank": state.local_process_index}, f)
    """
)


@pytest.mark.multiprocess
def test_two_processes_split_shards_and_main_merges(tmp_path, free_port):
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    # torchrun is what `accelerate launch` runs for several local processes; accelerate's PartialState
    # reads the same environment (RANK, WORLD_SIZE, ...), on CPU with the gloo backend.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), str(script), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)  # catches a hang only
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["computed"] == [0, 6] and ranks[1]["computed"] == [3, 9]  # shards 0,2 and 1,3
    for rank in ranks:
        assert rank["first_col"] == list(np.arange(10, dtype=float))


@pytest.mark.multiprocess
def test_two_nodes_of_two_ranks_own_shards_by_global_rank(tmp_path, free_port):
    """Two torchrun "nodes" on this machine (static rendezvous), two ranks each, one shared store: shard k
    belongs to global rank k % 4 (not to the local rank), and only global rank 0 merges."""
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    port = str(free_port())
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                               "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", port,
                               str(script), str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for node in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=900)  # catches a hang only
        assert node.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    # 10 rows in shards of 3: shards 0..3 -> global ranks 0..3, one each
    assert [r["computed"] for r in ranks] == [[0], [3], [6], [9]]
    assert [r["local_rank"] for r in ranks] == [0, 1, 0, 1]
    report = json.loads((tmp_path / "entry" / "report.json").read_text())
    assert report["shards"] == 4 and report["n"] == 10 and report["computed_shards_main"] == 1
    for rank in ranks:
        assert rank["first_col"] == list(np.arange(10, dtype=float))
