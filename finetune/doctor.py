"""`geotune doctor MODEL_DIR`: does this checkpoint load, train a step and generate here? Ask before GPU hours.

It loads the checkpoint exactly as ``train.py`` and ``geotune eval`` do (the adapter's ``load``, with the
compat fixes), checks the tokenizer (the template's special tokens inside the embedding table; the ids of
the checkpoint's own tokenizer class, when it ships one), encodes a sample with a dummy image through
the adapter's ``encode_for_training`` and the training collator, runs the family's training forward +
backward and one optimizer step, and generates through the adapter (eval's path) twice: with the KV
cache and by one full forward per token. Loss, logits and gradients must be finite and both
generations agree. It prints the compat fixes applied, dtype, parameter counts and image tokens per
tile. Exit status 0 when every check passes, 1 otherwise (the failed checks say why), 2 when there is
no checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
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


def model_config(model_dir: Path, family: str, args):
    """The recipe's ``model`` section doctor loads with: what ``train.py``/``geotune eval`` get for it."""
    from finetune.config import ModelConfig

    return ModelConfig(path=str(model_dir), adapter=family, trust_remote_code=args.trust_remote_code, dtype=args.dtype,
                       vision_tower_path=args.vision_tower_path, template=getattr(args, "template", None))


@contextlib.contextmanager
def recorded_compat_fixes():
    """Yield a list that collects the names of the compat fixes applied (as the compat logger reports them)."""
    from finetune.models.compat.base import logger

    names: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if str(record.msg).startswith("compat fix ") and record.args:
                names.append(record.args[0])

    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield names
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def load_for_training(model_dir: Path, family: str, args):
    """``(model, processor_or_tokenizer, applied_fixes)``: the adapter's ``load``, exactly as training and
    eval call it (a bare remote LM, which no adapter trains: compat's loaders)."""
    from finetune.models.adapters import get_adapter
    from finetune.models.adapters.internvl_hf import resolve_dtype
    from finetune.models.compat import load_remote_model, load_tokenizer

    with recorded_compat_fixes() as fixes:
        if family != "remote_lm":
            model, processor = get_adapter(family).load(model_config(model_dir, family, args))
            return model, processor, list(dict.fromkeys(fixes))
        model, _ = load_remote_model(
            model_dir, family=family, auto_class="AutoModelForCausalLM", dtype=resolve_dtype(args.dtype),
            vision_tower_path=args.vision_tower_path, trust_remote_code=args.trust_remote_code,
        )
        tokenizer, _ = load_tokenizer(model_dir, trust_remote_code=args.trust_remote_code)
    return model, tokenizer, list(dict.fromkeys(fixes))


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


SAMPLE_ANSWER = "A test card with a blue square."
SENTENCE = "What is in the image? A beach next to a river, seen from above."


def sample_record():
    from finetune.data.records import Record

    return Record(id="doctor", images=["doctor.png"], conversations=[
        {"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": SAMPLE_ANSWER}])


def _forward(adapter, family: str, model, batch: dict):
    """The family's training forward; ``image_flags`` added where InternVLChatModel needs them."""
    from finetune.models.adapters import training_forward

    if family == "internvl_remote" and "image_flags" not in batch and "pixel_values" in batch:
        batch = {**batch, "image_flags": torch.ones(batch["pixel_values"].shape[0], dtype=torch.long)}
    return training_forward(adapter, model, batch)


def probe_adapter(family: str, model, processor) -> Probe:
    """One training sample and one generation prompt, both through the adapter as training and eval use it."""
    from finetune.collator import DataCollatorForVLM
    from finetune.models.adapters import generate_new_tokens, get_adapter

    adapter = get_adapter(family)
    tokenizer = getattr(processor, "tokenizer", processor)
    image = dummy_image()
    sample = adapter.encode_for_training(processor, sample_record(), [image], 4096)
    sample = {k: v for k, v in sample.items() if k != "truncated"}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_batch = DataCollatorForVLM(int(pad))([sample])
    prompt = adapter.encode(processor, [adapter.generation_prompt(processor, QUESTION, 1)], [[image]])
    prompt = {k: v.to(model.dtype) if k == "pixel_values" else v for k, v in prompt.items()}
    train_batch["pixel_values"] = train_batch["pixel_values"].to(model.dtype)
    image_id = adapter.image_token_id(model)

    def step_logits(tokens):
        ids = torch.cat([prompt["input_ids"], torch.tensor([tokens], dtype=torch.long)], 1)
        batch = {**prompt, "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": None}
        return _forward(adapter, family, model, batch).logits[0, -1]

    return Probe(
        loss=lambda: _forward(adapter, family, model, train_batch).loss,
        generate=lambda n: generate_new_tokens(adapter, model, processor, prompt, max_new_tokens=n,
                                               min_new_tokens=n)[0].tolist(),
        step_logits=step_logits,
        image_tokens_per_tile=int((train_batch["input_ids"] == image_id).sum()) // int(train_batch["pixel_values"].shape[0]),
    )


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


def _finite_grads(model) -> tuple[int, int, float]:
    """(parameters with a gradient, of which non-finite, total grad norm)."""
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    bad = sum(int(not torch.isfinite(g).all()) for g in grads)
    norm = float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))) if grads else 0.0
    return len(grads), bad, norm


def check_tokenizer(model_dir: Path, family: str, model, processor, report: Report) -> None:
    """The template's special tokens are in the vocabulary and the embedding table, and the tokenizer gives
    the ids of the checkpoint's own tokenizer class (when it ships one) for them and for a sentence."""
    from finetune.models.adapters import get_adapter
    from finetune.models.compat import compare_with_own_tokenizer

    tokenizer = getattr(processor, "tokenizer", processor)
    listed = getattr(get_adapter(family), "template_tokens", None) if family != "remote_lm" else None
    tokens = [t for t in (listed(processor) if listed else tokenizer.all_special_tokens) if t]
    rows = model.get_input_embeddings().num_embeddings
    ids = tokenizer.convert_tokens_to_ids(tokens)
    missing = [f"{t!r} -> {i}" for t, i in zip(tokens, ids, strict=True)
               if i is None or i >= rows or (i == tokenizer.unk_token_id and t != tokenizer.unk_token)]
    reference, differences = compare_with_own_tokenizer(tokenizer, model_dir, tokens, SENTENCE)
    report.info("tokenizer", type(tokenizer).__name__ + (f" (checkpoint's own: {reference})" if reference else ""))
    report.check(not missing, "template tokens have ids inside the embedding table",
                 f"{', '.join(missing)} (the table has {rows} rows)")
    if reference:
        report.check(not differences, "tokenizer ids match the checkpoint's own tokenizer class", "; ".join(differences))


def train_step(model, probe: Probe, report: Report) -> None:
    """Forward + backward on the adapter-encoded sample, one SGD step on the trainable weights, forward again."""
    model.train()
    loss = probe.loss()
    report.info("loss (one step)", f"{loss.item():.4f}")
    if report.check(bool(torch.isfinite(loss)), "loss is finite", f"loss is {loss.item()}"):
        loss.backward()
        with_grad, bad, norm = _finite_grads(model)
        report.info("grad norm", f"{norm:.4g} over {with_grad} tensors")
        if report.check(with_grad > 0 and bad == 0 and norm > 0, "gradients finite and non-zero",
                        f"{bad} of {with_grad} gradient tensors non-finite, norm {norm}"):
            torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4).step()
            with torch.no_grad():
                after = probe.loss()
            report.info("loss after the step", f"{after.item():.4f}")
            report.check(bool(torch.isfinite(after)), "loss finite after an optimizer step", f"loss is {after.item()}")
    model.zero_grad(set_to_none=True)


def diagnose(model_dir: Path, family: str, args, report: Report) -> None:
    """Run every check on one checkpoint, recording lines and failures in ``report``."""
    import transformers

    from finetune.models.compat import FIXES

    model, processor, fixes = load_for_training(model_dir, family, args)
    summaries = {fix.name: fix.summary for fix in FIXES}
    report.info("model class", f"{type(model).__name__} (transformers {transformers.__version__})")
    report.info("dtype", str(next(model.parameters()).dtype).replace("torch.", ""))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.info("parameters", f"{total:,} total, {trainable:,} trainable (as loaded, before the recipe's freeze flags)")
    report.info("compat fixes applied", len(fixes) if fixes else "none")
    for name in fixes:
        report.lines.append(f"    - {name}: {summaries.get(name, '')}")
    check_tokenizer(model_dir, family, model, processor, report)
    probe = probe_remote_lm(model, processor) if family == "remote_lm" else probe_adapter(family, model, processor)
    report.info("image tokens per tile", probe.image_tokens_per_tile if probe.image_tokens_per_tile else "n/a (text-only)")
    train_step(model, probe, report)
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
