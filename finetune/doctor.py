"""`geotune doctor MODEL_DIR`: does this checkpoint load, train a step and generate here? Ask before GPU hours.

It loads the checkpoint as training would (the HF-native adapter, or the remote-code loader with its
compat fixes), runs one forward + backward on a dummy image, and a short greedy generation twice: with the
KV cache (``generate``) and without it (one full forward per token). It checks that loss, logits and
gradients are finite and that both generations agree, then prints the compat fixes applied, dtype,
parameter counts and image tokens per tile. Exit status 0 when every check passes, 1 otherwise (the
failed checks say why), 2 when the checkpoint cannot be loaded at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

# config.json "architectures" -> family; the HF-native InternVL has model_type "internvl" and no auto_map.
REMOTE_FAMILIES = {"InternVLChatModel": "internvl_remote", "InternLMXComposer2ForCausalLM": "xcomposer2"}
FAMILIES = ("internvl_hf", "internvl_remote", "xcomposer2", "remote_lm")
QUESTION = "What is in the image?"


@dataclass
class Probe:
    """What one family needs for the checks: a training batch, a generation prompt, a decoder step."""

    loss: Callable[[], torch.Tensor]
    generate: Callable[[int], list[int]]
    step_logits: Callable[[list[int]], torch.Tensor]
    image_tokens_per_tile: int | None


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def info(self, key: str, value) -> None:
        self.lines.append(f"  {key:<24} {value}")

    def check(self, ok: bool, name: str, reason: str = "") -> bool:
        self.lines.append(f"  [{'ok' if ok else 'FAIL'}] {name}" + ("" if ok else f": {reason}"))
        if not ok:
            self.failures.append(f"{name}: {reason}")
        return ok


def detect_family(model_dir: Path) -> str:
    """The adapter a checkpoint needs, from its config.json (``auto`` on the command line)."""
    raw = json.loads((model_dir / "config.json").read_text())
    for arch in raw.get("architectures") or []:
        if arch in REMOTE_FAMILIES:
            return REMOTE_FAMILIES[arch]
    if raw.get("auto_map"):
        return "remote_lm"
    return "internvl_hf"


def dummy_image(size: int = 64):
    """A deterministic RGB test card: gradients and a square, so features are not constant."""
    from PIL import Image

    xs = torch.linspace(0, 255, size)
    red, green = xs.view(1, -1).expand(size, size), xs.view(-1, 1).expand(size, size)
    blue = torch.zeros(size, size)
    blue[size // 4 : size // 2, size // 4 : size // 2] = 255
    return Image.fromarray(torch.stack([red, green, blue], -1).to(torch.uint8).numpy())


def load_for_training(model_dir: Path, family: str, args):
    """``(model, tokenizer_or_processor, applied_fixes)`` loaded the way training loads them."""
    from finetune.models.adapters.internvl_hf import resolve_dtype

    dtype = resolve_dtype(args.dtype)
    if family == "internvl_hf":
        from finetune.config import ModelConfig
        from finetune.models.adapters import get_adapter

        cfg = ModelConfig(path=str(model_dir), adapter=family, trust_remote_code=args.trust_remote_code, dtype=args.dtype)
        model, processor = get_adapter("internvl_hf").load(cfg)
        return model, processor, []
    from transformers import AutoTokenizer

    from finetune.models.compat import load_remote_model

    auto_class = "AutoModel" if family != "remote_lm" else "AutoModelForCausalLM"
    model, fixes = load_remote_model(
        model_dir, family=family, auto_class=auto_class, dtype=dtype,
        vision_tower_path=args.vision_tower_path, trust_remote_code=args.trust_remote_code,
    )
    return model, AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True), fixes


def _greedy_uncached(step_logits: Callable[[list[int]], torch.Tensor], n: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy decoding by one full forward per token (no KV cache): tokens and each step's logits."""
    tokens: list[int] = []
    steps = []
    for _ in range(n):
        steps.append(step_logits(tokens).float())
        tokens.append(int(steps[-1].argmax(-1)))
    return tokens, steps


# How close two logits must be to call a differing greedy pick a tie (relative to the logits' scale):
# cached and uncached attention add up in different orders, exact only in float32.
TIE_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def generations_agree(cached: list[int], uncached: list[int], steps: list[torch.Tensor], dtype) -> tuple[bool, str]:
    """Same tokens, or the first difference is a near-tie of the uncached logits (then the rest may differ)."""
    for i, (a, b) in enumerate(zip(cached, uncached, strict=False)):
        if a != b:
            logits = steps[i]
            gap = float((logits[b] - logits[a]).abs())
            if gap <= TIE_TOLERANCE.get(dtype, 1e-4) * max(1.0, float(logits.abs().max())):
                return True, f"tokens differ from step {i} on a near-tie (logit gap {gap:.2g})"
            return False, f"step {i}: cached picks {a}, uncached {b} (logit gap {gap:.3g})"
    return len(cached) == len(uncached), "" if len(cached) == len(uncached) else "different lengths"


def _labels(input_ids: torch.Tensor, ignore: set[int]) -> torch.Tensor:
    labels = input_ids.clone()
    for token in ignore:
        labels[labels == token] = -100
    return labels


def probe_internvl_hf(model, processor) -> Probe:
    from finetune.models.adapters import internvl_hf

    size = processor.image_processor.size["height"]
    prompt = internvl_hf.generation_prompt(processor, QUESTION, 1)
    batch = internvl_hf.encode(processor, [prompt], [[dummy_image(size)]])
    image_id = internvl_hf.image_token_id(model)

    def extend(tokens):
        ids = torch.cat([batch["input_ids"], torch.tensor([tokens], dtype=torch.long)], 1)
        return {**batch, "input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return Probe(
        loss=lambda: model(**batch, labels=_labels(batch["input_ids"], {image_id})).loss,
        generate=lambda n: model.generate(**batch, max_new_tokens=n, do_sample=False, min_new_tokens=n)[0, batch["input_ids"].shape[1]:].tolist(),
        step_logits=lambda tokens: model(**extend(tokens)).logits[0, -1],
        image_tokens_per_tile=int((batch["input_ids"] == image_id).sum()) // int(batch["pixel_values"].shape[0]),
    )


def _pixels(size: int) -> torch.Tensor:
    from torchvision.transforms.functional import normalize, to_tensor

    return normalize(to_tensor(dummy_image(size)), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).unsqueeze(0)


def probe_internvl_remote(model, tokenizer) -> Probe:
    config = model.config
    pixels = _pixels(config.force_image_size or config.vision_config.image_size).to(model.dtype)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    image = "<img>" + "<IMG_CONTEXT>" * model.num_image_token + "</img>"
    prompt = f"<|im_start|>user\n{image}\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    flags = torch.ones(1, 1, dtype=torch.long)

    def forward(tokens, **kw):
        full = torch.cat([ids, torch.tensor([tokens], dtype=torch.long)], 1)
        return model(pixel_values=pixels, input_ids=full, attention_mask=torch.ones_like(full), image_flags=flags, **kw)

    return Probe(
        loss=lambda: forward([], labels=_labels(ids, {model.img_context_token_id})).loss,
        generate=lambda n: model.generate(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids),
                                          max_new_tokens=n, min_new_tokens=n, do_sample=False)[0].tolist()[-n:],
        step_logits=lambda tokens: forward(tokens).logits[0, -1],
        image_tokens_per_tile=int(model.num_image_token),
    )


def probe_xcomposer2(model, tokenizer) -> Probe:
    """Embeddings built as training builds them: text ids, then ``img2emb`` rows where the image goes."""
    model.tokenizer = tokenizer  # the remote code tokenises through it
    tower = model.vit.vision_tower
    table = getattr(tower, "vision_model", tower).embeddings.position_embedding.num_embeddings
    size = tower.config.patch_size * math.isqrt(table - 1)  # the resized table sets the input size (490 px)
    image = model.vis_processor(dummy_image(size)) if hasattr(model, "vis_processor") else _pixels(size)[0]
    image = image.unsqueeze(0).to(model.dtype)
    embed = model.get_input_embeddings()

    def ids(text):
        return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]

    before, after, answer = ids("<|im_start|>user\n"), ids(f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n"), ids("beach<|im_end|>")

    def sequence(extra: torch.Tensor):
        image_rows = model.img2emb(image)[0]
        embeds = torch.cat([embed(before), image_rows, embed(after), embed(extra)], 1)
        im_mask = torch.zeros(embeds.shape[:2], dtype=torch.bool)
        im_mask[:, before.shape[1] : before.shape[1] + image_rows.shape[1]] = True
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long), im_mask

    def loss():
        embeds, mask, im_mask = sequence(answer)
        labels = torch.full(embeds.shape[:2], -100, dtype=torch.long)
        labels[:, -answer.shape[1] :] = answer
        return model(inputs_embeds=embeds, attention_mask=mask, labels=labels, im_mask=im_mask).loss

    def step_logits(tokens):
        embeds, mask, _ = sequence(torch.tensor([tokens], dtype=torch.long))
        return model(inputs_embeds=embeds, attention_mask=mask).logits[0, -1]

    def generate(n):
        embeds, mask, _ = sequence(torch.zeros(1, 0, dtype=torch.long))
        return model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                              do_sample=False)[0].tolist()[-n:]

    return Probe(loss=loss, generate=generate, step_logits=step_logits,
                 image_tokens_per_tile=int(model.img2emb(image)[0].shape[1]))


def probe_remote_lm(model, tokenizer) -> Probe:
    ids = tokenizer(f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt")["input_ids"]

    def step_logits(tokens):
        full = torch.cat([ids, torch.tensor([tokens], dtype=torch.long)], 1)
        return model(input_ids=full, attention_mask=torch.ones_like(full), use_cache=False).logits[0, -1]

    return Probe(
        loss=lambda: model(input_ids=ids, labels=ids).loss,
        generate=lambda n: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                          do_sample=False)[0, ids.shape[1]:].tolist(),
        step_logits=step_logits,
        image_tokens_per_tile=None,
    )


PROBES = {"internvl_hf": probe_internvl_hf, "internvl_remote": probe_internvl_remote,
          "xcomposer2": probe_xcomposer2, "remote_lm": probe_remote_lm}


def _finite_grads(model) -> tuple[int, int, float]:
    """(parameters with a gradient, of which non-finite, total grad norm)."""
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    bad = sum(int(not torch.isfinite(g).all()) for g in grads)
    norm = float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))) if grads else 0.0
    return len(grads), bad, norm


def diagnose(model_dir: Path, family: str, args, report: Report) -> None:
    """Run every check on one checkpoint, recording lines and failures in ``report``."""
    model, tok_or_processor, fixes = load_for_training(model_dir, family, args)
    from finetune.models.compat import FIXES

    summaries = {fix.name: fix.summary for fix in FIXES}
    import transformers

    report.info("model class", f"{type(model).__name__} (transformers {transformers.__version__})")
    report.info("dtype", str(next(model.parameters()).dtype).replace("torch.", ""))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.info("parameters", f"{total:,} total, {trainable:,} trainable")
    report.info("compat fixes applied", len(fixes) if fixes else "none")
    for name in fixes:
        report.lines.append(f"    - {name}: {summaries.get(name, '')}")
    probe = PROBES[family](model, tok_or_processor)
    report.info("image tokens per tile", probe.image_tokens_per_tile if probe.image_tokens_per_tile else "n/a (text-only)")

    model.train()
    loss = probe.loss()
    report.info("loss (one step)", f"{loss.item():.4f}")
    if report.check(bool(torch.isfinite(loss)), "loss is finite", f"loss is {loss.item()}"):
        loss.backward()
        with_grad, bad, norm = _finite_grads(model)
        report.info("grad norm", f"{norm:.4g} over {with_grad} tensors")
        report.check(with_grad > 0 and bad == 0 and norm > 0, "gradients finite and non-zero",
                     f"{bad} of {with_grad} gradient tensors non-finite, norm {norm}")
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        logits = probe.step_logits([])
        report.check(bool(torch.isfinite(logits).all()), "logits are finite", "NaN/inf in the next-token logits")
        cached = probe.generate(args.max_new_tokens)
        uncached, steps = _greedy_uncached(probe.step_logits, args.max_new_tokens)
    report.info("greedy (KV cache)", cached)
    report.info("greedy (no cache)", uncached)
    agree, detail = generations_agree(cached, uncached, steps, next(model.parameters()).dtype)
    if agree and detail:
        report.info("note", detail)
    report.check(agree, "cached and uncached generation agree",
                 f"{detail}: the KV-cache path decodes other tokens than full forwards (cache or position bug)")
