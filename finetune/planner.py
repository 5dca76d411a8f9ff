"""`geotune plan recipe=NAME`: per-GPU training memory of a recipe, by component, and a verdict.

Model states follow DeepSpeed's own estimators (``estimate_zero2/3_model_states_mem_needs``; the tests
check the totals match): bf16 weights, and for the *trainable* parameters bf16 + fp32 gradients, fp32
master weights and Adam m, v, sharded by the ZeRO stage of the recipe's ``train.deepspeed`` JSON.
Activations count the tensors autograd keeps per decoder layer (and per ViT layer when the tower trains),
with gradient checkpointing keeping only each layer's input plus one recomputed layer; the logits and
the fp32 loss tensors are a component of their own, because at a 92k vocabulary they rival the layers.
The constants were checked against measured peaks (``benchmarks/planner_calibration.py`` with
``finetune.step_memory``, error in ``docs/planner.md``). Assumed: flash/SDPA attention (no seq^2
attention matrix kept).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finetune.config import RecipeError
from finetune.planner_data import ModelSpec, lookup_model, spec_from_config

# Recipes name DeepSpeed configs relative to the repository root (recipes/deepspeed/zero2.json).
REPO_ROOT = Path(__file__).resolve().parent.parent

GIB = 1024**3
# Elements autograd keeps per token in one decoder layer: ACT_H x hidden + ACT_I x intermediate
# (+ key/value width) -- norms, q/k/v with rotary copies, attention output, MLP gate/up/act/product.
ACT_H, ACT_KV, ACT_I = 10, 4, 4
VIT_ACT_D, VIT_ACT_I = 11, 2
# fp32 tensors of logits size alive at the loss peak (log-softmax output, its gradient, the upcast copy).
LOGIT_FP32_COPIES = 3
CUDA_CONTEXT_GIB = 0.75  # CUDA context + cuBLAS workspace of one process (0.5-1 GiB on recent GPUs)
NCCL_GIB = 0.25  # communicator buffers, when there is more than one GPU
FRAGMENTATION = 0.10  # caching-allocator slack on the dynamic part (activations, logits, gradients)
FITS_SHARE = 0.90  # "fits" below 90% of the GPU: the estimate's error (docs/planner.md) stays inside


@dataclass
class Setup:
    """Everything the estimate depends on (``setup_from_recipe`` derives it from a recipe)."""

    spec: ModelSpec
    mode: str = "lora"
    lora_r: int = 16
    lora_targets: list[str] = field(default_factory=list)
    lora_vision: bool = False
    train_vision: bool = False
    train_projector: bool = False
    train_llm: bool = True
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    gpus: int = 2
    weight_bytes: int = 2
    batch: int = 1
    grad_accum: int = 1
    seq: int = 4096
    tiles: int = 1
    gradient_checkpointing: bool = False
    lora_dropout: bool = True
    device: str = "cuda"
    # Share of positions whose logits are computed: 1.0 without ``train.supervised_logits``; with it, the
    # share of tokens that carry labels (the run summary's ``labelled_share``). 1.0 is the worst case.
    labelled_share: float = 1.0

    @property
    def image_tokens(self) -> int:
        return self.tiles * self.spec.image_tokens_per_tile()


def lora_params(spec: ModelSpec, targets: list[str], r: int) -> int:
    """LoRA parameters on the LLM: layers x sum over targets of r x (in + out)."""
    shapes = spec.llm.linear_shapes()
    unknown = [t for t in targets if not any(name == t or name.endswith("." + t) or t.endswith(name) for name in shapes)]
    if unknown:
        raise ValueError(f"train.lora.target_modules: {unknown} are not linear layers of {spec.llm.arch} ({list(shapes)})")
    hit = [name for name in shapes if any(name == t or name.endswith("." + t) or t.endswith(name) for t in targets)]
    return spec.llm.layers * sum(r * sum(shapes[name]) for name in hit)


def vision_lora_params(spec: ModelSpec, r: int) -> int:
    d, i = spec.vision.hidden, spec.vision.intermediate
    return spec.vision.layers * r * ((d + 3 * d) + 2 * d + (d + i) + (i + d))  # qkv, proj, fc1, fc2


def trainable_split(s: Setup) -> tuple[int, int]:
    """(trainable, frozen) parameter counts for the mode and freeze flags."""
    parts = s.spec.parts()
    total = sum(parts.values())
    if s.mode == "full":
        trainable = sum(n for part, n in parts.items() if getattr(s, f"train_{part}"))
        return trainable, total - trainable
    trainable = lora_params(s.spec, s.lora_targets, s.lora_r) if s.train_llm else 0
    trainable += vision_lora_params(s.spec, s.lora_r) if s.lora_vision else 0
    # Unfrozen parts without LoRA train in full (peft modules_to_save keeps a frozen copy beside them).
    extra = parts["projector"] * s.train_projector + parts["vision"] * (s.train_vision and not s.lora_vision)
    return trainable + extra, total


def largest_module_params(spec: ModelSpec) -> int:
    """The biggest single module (what ZeRO-3 gathers at once): embedding / lm_head or a linear layer."""
    linear = max(a * b for a, b in spec.llm.linear_shapes().values())
    return max(spec.llm.vocab * spec.llm.hidden, linear, spec.vision.hidden * spec.vision.intermediate)


def host_ram_gib(s: Setup) -> float:
    """CPU memory that ZeRO offload needs, from DeepSpeed's own estimators (trainable parameters)."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed logs to stdout on import; keep --json clean
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    trainable, _ = trainable_split(s)
    if s.zero_stage == 3:
        cpu, _, _ = estimate_zero3_model_states_mem_needs(trainable, largest_module_params(s.spec), s.gpus, 1,
                                                          True, s.offload_param, True)
    else:
        cpu, _ = estimate_zero2_model_states_mem_needs(trainable, s.gpus, 1, True)
    return cpu / GIB


def model_states(s: Setup) -> dict[str, float]:
    """Bytes per GPU of weights, gradients and optimizer states (DeepSpeed's accounting under ZeRO)."""
    trainable, frozen = trainable_split(s)
    n, w = s.gpus, s.weight_bytes
    if s.zero_stage == 0:  # plain DDP: torch AdamW keeps m, v in the parameter dtype; peft LoRA is fp32
        tb = 4 if s.mode == "lora" else w
        return {"weights": frozen * w + trainable * tb, "gradients": trainable * tb, "optimizer": 2 * trainable * tb,
                "zero3_gathered": 0}
    if s.zero_stage in (1, 2):
        grads = 2 * trainable + 4 * trainable / n if s.zero_stage == 1 else 6 * trainable / n
        if s.offload_optimizer:
            grads = 0
        return {"weights": 2 * (frozen + trainable), "gradients": grads,
                "optimizer": 0 if s.offload_optimizer else 12 * trainable / n, "zero3_gathered": 0}
    gathered = 4 * largest_module_params(s.spec)
    weights = 0 if s.offload_param else 2 * (frozen + trainable) / n
    offload = s.offload_optimizer
    return {"weights": weights, "gradients": 0 if offload else 4 * trainable / n,
            "optimizer": 0 if offload else 12 * trainable / n, "zero3_gathered": gathered}


def llm_layer_elements(s: Setup) -> float:
    """Elements autograd keeps per token in one decoder layer (LoRA adds each target's input copy + r)."""
    llm = s.spec.llm
    elements = ACT_H * llm.hidden + ACT_KV * llm.kv_heads * llm.dim + ACT_I * llm.intermediate
    if s.mode == "lora" and s.train_llm and s.lora_dropout:
        shapes = llm.linear_shapes()
        elements += sum(shapes[name][0] + s.lora_r for name in shapes if any(name.endswith(t) or t.endswith(name)
                                                                              for t in s.lora_targets))
    return elements


def activations(s: Setup) -> dict[str, float]:
    """Bytes per GPU of activations kept for backward, of the recomputed layer, and of the logits/loss."""
    spec, a = s.spec, s.weight_bytes
    tokens = s.batch * s.seq
    per_layer = tokens * llm_layer_elements(s) * a
    if s.gradient_checkpointing:  # each layer's input stays; one layer is recomputed at a time
        llm, recomputed = spec.llm.layers * tokens * spec.llm.hidden * a, per_layer
    else:
        llm, recomputed = spec.llm.layers * per_layer, 0.0
    vit_tokens = s.batch * s.tiles * spec.vision.positions
    vit_layer = vit_tokens * (VIT_ACT_D * spec.vision.hidden + VIT_ACT_I * spec.vision.intermediate) * a
    if s.train_vision or s.lora_vision:
        vit = vit_layer + (spec.vision.layers * vit_tokens * spec.vision.hidden * a if s.gradient_checkpointing
                           else (spec.vision.layers - 1) * vit_layer)
    else:
        vit = vit_layer  # a frozen tower keeps nothing; one layer's working set is transient
    fp32_copies = LOGIT_FP32_COPIES - (1 if a == 4 else 0)  # in fp32 the upcast is the logits themselves
    logits = tokens * s.labelled_share * spec.llm.vocab * (a + 4 * fp32_copies)
    return {"activations_llm": llm, "recomputed_layer": recomputed, "activations_vision": vit, "logits_loss": logits}


def not_alive_together(s: Setup, acts: dict[str, float], gradients: float) -> float:
    """Bytes counted twice by summing components. The loss tensors are freed before checkpointed layers
    are recomputed; with one micro-batch per step the gradients fill up as activations are freed (with
    accumulation they live across micro-batches, so they do add up)."""
    overlap = min(acts["logits_loss"], acts["recomputed_layer"])
    if s.grad_accum == 1:
        overlap += min(sum(acts.values()) - overlap, gradients)
    return -overlap


def overheads(s: Setup, dynamic: float, deepspeed_buckets: float) -> dict[str, float]:
    if s.device != "cuda":
        return {"deepspeed_buffers": deepspeed_buckets, "cuda_context_nccl": 0, "fragmentation": 0}
    context = (CUDA_CONTEXT_GIB + (NCCL_GIB if s.gpus > 1 else 0)) * GIB
    return {"deepspeed_buffers": deepspeed_buckets, "cuda_context_nccl": context, "fragmentation": FRAGMENTATION * dynamic}


def deepspeed_buffers(s: Setup, ds_cfg: dict) -> float:
    """Bucket memory of ZeRO: the gradient-reduce bucket ("auto": hidden^2) and, for ZeRO-2, the
    all-gather bucket; ``overlap_comm`` multiplies them by 4.5 (DeepSpeed docs). Capped by what there is."""
    if not s.zero_stage:
        return 0.0
    zero = ds_cfg.get("zero_optimization", {})
    h2 = s.spec.llm.hidden ** 2

    def size(key: str, default: float) -> float:
        value = zero.get(key, default)
        return float(h2 if value == "auto" else value)

    trainable, _ = trainable_split(s)
    elements = min(size("reduce_bucket_size", 5e8), trainable)
    if s.zero_stage <= 2:
        elements += min(size("allgather_bucket_size", 5e8), trainable)
    else:
        elements += min(size("stage3_prefetch_bucket_size", 5e7) if zero.get("stage3_prefetch_bucket_size") != "auto"
                        else 0.9 * h2, trainable)
    factor = 4.5 if zero.get("overlap_comm") else 1.0
    return elements * 2 * factor


@dataclass
class Plan:
    setup: Setup
    components: dict[str, float]
    capacity_gib: float
    notes: list[str]

    @property
    def total(self) -> float:
        return sum(self.components.values())

    @property
    def verdict(self) -> str:
        gib = self.total / GIB
        if gib <= FITS_SHARE * self.capacity_gib:
            return "fits"
        return "tight" if gib <= self.capacity_gib else "does not fit"

    def to_json(self) -> dict:
        trainable, frozen = trainable_split(self.setup)
        setup = {k: v for k, v in asdict(self.setup).items() if k != "spec"}
        return {
            "model": self.setup.spec.name, "spec_source": self.setup.spec.source,
            "params": {**self.setup.spec.parts(), "total": self.setup.spec.params(), "trainable": trainable},
            "image_tokens_per_sample": self.setup.image_tokens, "setup": setup,
            "per_gpu_gib": {k: round(v / GIB, 3) for k, v in self.components.items()},
            "total_gib": round(self.total / GIB, 3), "capacity_gib": self.capacity_gib, "verdict": self.verdict,
            "notes": self.notes,
        }


def estimate(s: Setup, capacity_gib: float = 24.0, ds_cfg: dict | None = None) -> Plan:
    """The per-GPU memory plan of one setup."""
    states = model_states(s)
    acts = activations(s)
    overlap = not_alive_together(s, acts, states["gradients"])
    dynamic = sum(acts.values()) + states["gradients"] + overlap
    components = {**states, **acts, "not_alive_together": overlap,
                  **overheads(s, dynamic, deepspeed_buffers(s, ds_cfg or {}))}
    notes = []
    if s.image_tokens >= s.seq:
        notes.append(f"one image is {s.image_tokens} tokens but max_length is {s.seq}: every image sample "
                     "would be dropped or cut; raise train.max_length")
    return Plan(s, components, capacity_gib, notes)


# ---- from a recipe ----------------------------------------------------------------------------------


def resolve_spec(model_cfg) -> ModelSpec:
    """The model's spec: its ``config.json`` when ``model.path`` exists, else the built-in table."""
    path = Path(model_cfg.path)
    if (path / "config.json").exists():
        try:
            return spec_from_config(path, model_cfg.vision_tower_path)
        except (ValueError, KeyError) as err:
            raise RecipeError(f"model.path: cannot plan for {path / 'config.json'}: {err}") from err
    if model_cfg.tiny:  # the demo's tiny model, before `geotune train` builds it
        from finetune.models.tiny import tiny_internvl_config
        from finetune.planner_data import spec_from_dict

        text = dict(model_cfg.get("tiny_text") or {})  # the proxy base's wider text model (recipes/proxy_base.yaml)
        return spec_from_dict(tiny_internvl_config(600, 0, text_overrides=text).to_dict(), path.name, "finetune.models.tiny")
    spec = lookup_model(str(path))
    if spec is None:
        from finetune.planner_data import KNOWN_MODELS

        raise RecipeError(
            f"model.path: '{path}' has no config.json and its name is not in the planner's table; point model.path "
            f"at the checkpoint folder, or name it like one of: {', '.join(sorted(KNOWN_MODELS))}"
        )
    return spec


def read_deepspeed(path: str | None) -> dict:
    if not path:
        return {}
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.exists():
            return json.loads(candidate.read_text())
    raise RecipeError(f"train.deepspeed: '{path}' not found (relative paths are tried from here and the repo root)")


def setup_from_recipe(cfg, gpus: int = 2, seq_len: int | None = None,
                      labelled_share: float | None = None) -> tuple[Setup, dict]:
    """The planner's ``Setup`` and the DeepSpeed JSON of a loaded recipe (``labelled_share`` counts only
    with ``train.supervised_logits``; without it every position gets logits)."""
    from finetune.lora import LLM_TARGETS

    if labelled_share is not None and not 0 < labelled_share <= 1:
        raise RecipeError(f"--labelled-share must be in (0, 1], got {labelled_share}")
    spec = resolve_spec(cfg.model)
    train = cfg.train
    ds = read_deepspeed(train.deepspeed)
    zero = ds.get("zero_optimization", {})
    half = bool(train.bf16) or cfg.model.dtype in ("bfloat16", "float16")
    tiles = 1
    if spec.family == "internvl" and cfg.model.max_dynamic_patch > 1:
        tiles = int(cfg.model.max_dynamic_patch) + 1  # + the thumbnail
    setup = Setup(
        spec=spec, mode=train.mode, lora_r=int(train.lora.r),
        lora_targets=list(train.lora.target_modules or LLM_TARGETS.get(spec.llm.arch, LLM_TARGETS["llama"])),
        lora_vision=bool(train.lora.vision), train_vision=not train.freeze_vision,
        train_projector=not train.freeze_projector, train_llm=not train.freeze_llm,
        zero_stage=int(zero.get("stage", 0)),
        offload_optimizer=zero.get("offload_optimizer", {}).get("device", "none") == "cpu",
        offload_param=zero.get("offload_param", {}).get("device", "none") == "cpu",
        gpus=gpus, weight_bytes=2 if half or ds else 4, batch=int(train.per_device_batch_size),
        grad_accum=int(train.grad_accum),
        seq=int(seq_len or train.max_length), tiles=tiles,
        gradient_checkpointing=bool(train.gradient_checkpointing), lora_dropout=float(train.lora.dropout) > 0,
        labelled_share=float(labelled_share) if train.supervised_logits and labelled_share is not None else 1.0,
    )
    return setup, ds


def plan_recipe(cfg, gpus: int = 2, gpu_gib: float = 24.0, seq_len: int | None = None,
                labelled_share: float | None = None) -> Plan:
    if cfg.train.get("task", "vlm") != "vlm":
        # The memory model is a VLM's (LLM + ViT + projector, token activations); a CLIP dual encoder at
        # HarMA's batch 428 is another shape, and a wrong number is worse than none.
        raise RecipeError(f"train.task={cfg.train.task}: the planner models multimodal LLM fine-tuning only "
                          "(train.task=vlm); retrieval recipes are not planned (docs/harma.md gives measured memory)")
    setup, ds = setup_from_recipe(cfg, gpus, seq_len, labelled_share)
    try:
        plan = estimate(setup, gpu_gib, ds)
    except ValueError as err:  # LoRA targets that are not layers of this model
        raise RecipeError(str(err)) from err
    if not seq_len and plan.verdict != "fits":
        plan.notes.append(f"planned for {setup.seq}-token samples (train.max_length, the worst case); "
                          "--seq-len N plans for your longest sample")
    if cfg.train.supervised_logits and labelled_share is None:
        plan.notes.append("logits counted at every position (worst case); train.supervised_logits computes them "
                          "only where labels are: --labelled-share S plans with the run summary's labelled_share")
    if setup.offload_optimizer:
        plan.notes.append(f"ZeRO offload needs about {host_ram_gib(setup):.0f} GiB of host RAM (DeepSpeed's estimate)")
    if not setup.gradient_checkpointing and setup.spec.llm.layers > 4:
        plan.notes.append("gradient checkpointing is off: activations of every layer are kept")
    return plan


def candidate_changes(cfg, setup: Setup) -> list[list[str]]:
    """Overrides worth trying, each on its own, cheapest in quality/speed first."""
    t = cfg.train
    changes = []
    if not t.gradient_checkpointing:
        changes.append(["train.gradient_checkpointing=true"])
    if t.per_device_batch_size > 1:
        changes.append(["train.per_device_batch_size=1", f"train.grad_accum={t.grad_accum * t.per_device_batch_size}"])
    for length in (2048, 1024):
        if length < setup.seq and length >= setup.image_tokens + 256:
            changes.append([f"train.max_length={length}"])
    if setup.spec.family == "internvl" and cfg.model.max_dynamic_patch > 2:
        changes.append([f"model.max_dynamic_patch={cfg.model.max_dynamic_patch // 2}"])
    if setup.zero_stage < 3:
        changes.append(["train.deepspeed=recipes/deepspeed/zero3.json"])
    if not setup.offload_optimizer:
        changes.append(["train.deepspeed=recipes/deepspeed/zero3_offload.json"])
    if t.mode == "full" and not t.freeze_vision:
        changes.append(["train.freeze_vision=true"])
    if t.mode == "full":
        changes.append(["train.mode=lora"])
    return changes


def suggestions(cfg, plan: Plan, gpus: int, gpu_gib: float, seq_len: int | None = None,
                labelled_share: float | None = None) -> list[tuple[str, float, str]]:
    """``(overrides, total GiB, verdict)`` for each candidate change that lowers the estimate (planned with
    the same ``seq_len`` / ``labelled_share`` as ``plan``)."""
    from omegaconf import OmegaConf

    out = []
    for change in candidate_changes(cfg, plan.setup):
        other = plan_recipe(OmegaConf.merge(cfg, OmegaConf.from_dotlist(change)), gpus, gpu_gib, seq_len, labelled_share)
        if other.total < plan.total:
            out.append((" ".join(change), other.total / GIB, other.verdict))
    return out


# ---- CLI ----------------------------------------------------------------------------------------------
