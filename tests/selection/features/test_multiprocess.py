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
        json.dump({"computed": mine, "first_col": np.asarray(values[:, 0]).tolist()}, f)
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
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["computed"] == [0, 6] and ranks[1]["computed"] == [3, 9]  # shards 0,2 and 1,3
    for rank in ranks:
        assert rank["first_col"] == list(np.arange(10, dtype=float))
