"""Calibrate `geotune plan` against measured training-step peaks on CPU.

For the tiny InternVL and a "small" one (4 text layers, hidden 256), in LoRA and full mode, with and
without gradient checkpointing, and at two sequence lengths, this measures the peak memory of one
forward + backward + AdamW step with torch's MemTracker (tensor accounting: parameters, gradients,
optimizer states, activations/temporaries) and prints it beside the planner's estimate for the same
setup (fp32, one process, no DeepSpeed, no CUDA overheads).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finetune.planner import GIB, Setup, estimate  # noqa: E402
from finetune.planner_data import spec_from_dict  # noqa: E402
from finetune.step_memory import measure_step_memory  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def internvl_config(size: str):
    """tiny: the test model's shapes; small: 4 text layers, hidden 256, vocab 4096."""
    from transformers import InternVLConfig

    if size == "tiny":
        from finetune.models.tiny import tiny_internvl_config

        return tiny_internvl_config(600, 599)
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                  image_size=[64, 64], patch_size=[8, 8])
    text = dict(model_type="qwen2", vocab_size=4096, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=False)
    return InternVLConfig(vision_config=vision, text_config=text, image_token_id=4095, image_seq_length=16,
                          downsample_ratio=0.5)


def build(size: str, mode: str, checkpointing: bool, r: int = 8):
    from transformers import InternVLForConditionalGeneration

    config = internvl_config(size)
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config).train()
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.model.vision_tower.requires_grad_(False)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        targets = [n for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and "language_model" in n and n.rsplit(".", 1)[-1] in LORA_TARGETS]
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=targets))
    return model, config


def make_batch(config, seq: int, batch: int = 1) -> dict:
    n_img = config.image_seq_length
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.text_config.vocab_size - 16, (batch, seq), generator=g)
    ids[:, 1 : 1 + n_img] = config.image_token_id
    size = config.vision_config.image_size[0]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
            "pixel_values": torch.randn(batch, 3, size, size, generator=g)}


def planner_setup(size: str, mode: str, checkpointing: bool, seq: int, r: int = 8) -> Setup:
    spec = spec_from_dict(internvl_config(size).to_dict(), size, "benchmark")
    return Setup(spec=spec, mode=mode, lora_r=r, lora_targets=LORA_TARGETS, train_vision=False,
                 train_projector=mode == "full", zero_stage=0, gpus=1, weight_bytes=4, batch=1, seq=seq, tiles=1,
                 gradient_checkpointing=checkpointing, device="cpu")


def compare(size: str, mode: str, checkpointing: bool, seq: int) -> dict:
    """Measured and estimated bytes of one configuration, by component."""
    model, config = build(size, mode, checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    measured = measure_step_memory(model, make_batch(config, seq), torch.optim.AdamW(params, lr=1e-4, fused=True))
    plan = estimate(planner_setup(size, mode, checkpointing, seq))
    c = plan.components
    activations = c["activations_llm"] + c["recomputed_layer"] + c["activations_vision"] + c["logits_loss"]
    estimated = {"params": c["weights"], "grads": c["gradients"], "optimizer": c["optimizer"],
                 "activations": activations + c["not_alive_together"], "total": plan.total}
    return {"measured": measured, "estimated": estimated}


CASES = [(size, mode, ckpt, seq) for size in ("tiny", "small") for mode in ("lora", "full")
         for ckpt in (False, True) for seq in (256, 1024)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small model at 1024 tokens")
    args = parser.parse_args()
    cases = [c for c in CASES if c[0] == "small" and c[3] == 1024] if args.quick else CASES
    print(f"{'model':6} {'mode':5} {'ckpt':5} {'seq':>5} | {'act meas MiB':>12} {'act est':>8} {'err':>6} | "
          f"{'total meas MiB':>14} {'total est':>9} {'err':>6}")
    worst = 0.0
    for size, mode, ckpt, seq in cases:
        r = compare(size, mode, ckpt, seq)
        m, e = r["measured"], r["estimated"]
        act_err = e["activations"] / m["activations"] - 1
        tot_err = e["total"] / m["total"] - 1
        worst = max(worst, abs(tot_err))
        print(f"{size:6} {mode:5} {str(ckpt):5} {seq:5d} | {m['activations'] / 2**20:12.2f} "
              f"{e['activations'] / 2**20:8.2f} {act_err:+6.1%} | {m['total'] / 2**20:14.2f} "
              f"{e['total'] / 2**20:9.2f} {tot_err:+6.1%}")
    print(f"worst total error: {worst:.1%} (GiB = {GIB} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
