"""Run by ``accelerate launch`` in test_sharding.py: every process answers its share of UCMerced."""

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from eval import runners
from eval.readers import read_ucmerced
from finetune.distributed import process_state
from finetune.models.adapters import get_adapter


def main(model_dir: str, bench_root: str, out_dir: str) -> None:
    state = process_state()
    answered = []
    real = runners.generate_batch

    def counting(model, processor, adapter, prompts, images, **kwargs):
        answered.extend(prompts)
        return real(model, processor, adapter, prompts, images, **kwargs)

    runners.generate_batch = counting
    adapter = get_adapter("internvl_hf")
    model, processor = adapter.load(OmegaConf.create({"path": model_dir, "trust_remote_code": False, "dtype": "float32"}))
    result = runners.run_benchmark("ucmerced", model.eval(), processor, read_ucmerced(bench_root), adapter=adapter, batch_size=2,
                                  out_dir=out_dir, max_new_tokens=2, progress=False)
    Path(out_dir, f"result.rank{state.process_index}.json").write_text(json.dumps(
        {"world": state.num_processes, "count": result["count"], "score": result["score"], "answered": len(answered)}))
    # As after training: only the main process evaluates (shard=False) and must not wait for the others.
    if state.is_main_process:
        alone = runners.run_benchmark("ucmerced", model, processor, read_ucmerced(bench_root), adapter=adapter, batch_size=9,
                                     out_dir=Path(out_dir) / "main_only", max_new_tokens=2, progress=False, shard=False)
        Path(out_dir, "main_only.json").write_text(json.dumps({"count": alone["count"], "score": alone["score"]}))
    state.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:4])
