"""What HF ``Trainer``'s loop costs over a plain torch loop, on the peer benchmark's run (docs/performance.md).

Both loops drive the same pieces geotune builds (``build_trainer``: model, dataset, collator, DataLoader,
optimizer, scheduler, ``compute_loss``) at ``benchmarks/peers/compare.py``'s setting; the plain loop is
backward, clip over the trainable parameters, step, ``zero_grad``, nothing else. Same losses, step for
step, or the comparison means nothing (checked: the mean and last-20 losses are printed). One loop per
process; run the two alternately and compare their CPU seconds:

    W=/tmp/peers/r7   # a compare.py --work folder (its tiny model, pool and cache)
    for how in trainer plain trainer plain; do
        PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/trainer_overhead.py $W lora $how
    done
"""

import json
import sys
import time
from pathlib import Path

import torch

from finetune.data.loader import load_training_data
from finetune.training import build_trainer
from geotune.config import load_recipe, parse_overrides

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from systems import Setting, geotune_command  # noqa: E402

W, mode, how = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
# compare.py's own geotune command line (the overrides after `python -m geotune train`), so both stay equal.
command = geotune_command(sys.executable, W / "tiny", W / "data" / "pool_sharegpt.json", W / "synthrs" / "instruct",
                          W / "runs" / f"trainer-overhead-{mode}-{how}", W / "cache", Setting(mode))
args = command[command.index("train") + 1:]
recipe, overrides = parse_overrides(args)
cfg = load_recipe(recipe, overrides)
data = load_training_data(cfg)
trainer = build_trainer(cfg, data)
cpu0, t0 = time.process_time(), time.perf_counter()
if how == "trainer":
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
else:
    loader = trainer.get_train_dataloader()
    steps = len(loader) * 2
    trainer.create_optimizer_and_scheduler(num_training_steps=steps)
    opt, sched, model = trainer.optimizer, trainer.lr_scheduler, trainer.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    losses = []
    for _epoch in range(2):  # the same DataLoader, two passes, as the Trainer makes
        for batch in loader:
            loss = trainer.compute_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
print(json.dumps({"how": how, "loop_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - cpu0, 2),
                  "steps": len(losses), "mean_loss": round(sum(losses) / len(losses), 4),
                  "last20": round(sum(losses[-20:]) / 20, 4)}))
