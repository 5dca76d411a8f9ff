"""The GeoChat-style training pool: ``instruct/geochat_style.json`` (LLaVA format) and its sidecar.

Built like real instruction pools are, so that choosing data matters:

- long-tailed classes (Zipf weights over a seeded class order) and tasks (``task_shares``);
- near-duplicates: a share of records re-draw an earlier record's scene from the same seed, with a
  small jitter (a shift of up to one pixel, a colour gain, fresh noise) and the same question;
- noise: a share of records have a wrong answer, or an image that is blank or degenerate;
- several instructions per image (``instructions_per_image``): as in GeoChat_Instruct, one scene is
  asked for its class, a caption, a box and a region's object (land-cover scenes: several questions).

``instruct/geochat_style_meta.jsonl`` says, per record id, what it is (task, dataset, class, which
record it duplicates, which noise it carries), so selection quality can be measured against it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from finetune.files import write_jsonl_atomic
from geotune.synth.canvas import DrawnObject, oriented_box
from geotune.synth.layouts import (
    AID_PROMPT,
    UCM_PROMPT,
    VQA_SUFFIX,
    save_image,
    stream_rng,
    write_json,
)
from geotune.synth.scenes import UCM_CLASSES, spaced_ucm
from geotune.synth.scenes_aid import AID_CLASSES, draw_scene, spaced_aid
from geotune.synth.vqa import draw_lr_scene, lr_questions

DEFAULT_TASK_SHARES = {"classification": 0.4, "vqa": 0.3, "caption": 0.12, "grounding": 0.1, "region": 0.08}
# RSVQA-LR's own mix is comparison-heavy; rural/urban is rare (1 question per image).
VQA_TYPE_SHARES = {"presence": 0.35, "comp": 0.35, "count": 0.2, "rural_urban": 0.1}
CAPTION_PROMPTS = ("Describe the image in detail.", "[caption] Give a short description of the image.")
# Things too big or too diffuse to point at with a box.
NOT_LOCATABLE = {"road", "farmland", "forest"}


@dataclass
class PoolOptions:
    """Composition of the pool; the defaults are the documented ones (docs/synthrs.md)."""

    records: int = 1500
    task_shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_SHARES))
    class_zipf: float = 1.0  # class weight ∝ 1 / rank**class_zipf
    duplicate_share: float = 0.15
    noise_share: float = 0.04
    degenerate_share_of_noise: float = 0.35  # the rest of the noise is wrong answers
    instructions_per_image: int = 1  # records sharing one image, each another task

    def __post_init__(self) -> None:
        if self.instructions_per_image < 1:
            raise ValueError(f"PoolOptions.instructions_per_image must be >= 1, got {self.instructions_per_image}")
        for name in ("duplicate_share", "noise_share", "degenerate_share_of_noise"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"PoolOptions.{name} must be in [0, 1), got {getattr(self, name)}")
        unknown = set(self.task_shares) - set(DEFAULT_TASK_SHARES)
        if unknown or sum(self.task_shares.values()) <= 0:
            raise ValueError(f"PoolOptions.task_shares: tasks are {sorted(DEFAULT_TASK_SHARES)}, with a positive sum")


@dataclass
class Spec:
    """What a record is: enough to re-draw its scene and re-ask its question."""

    task: str
    dataset: str  # ucmerced | aid | lr
    name: str  # class name ("lr" scenes: "urban"/"rural")
    scene_key: int  # index of the scene's random stream


def class_weights(n: int, zipf: float, rng: np.random.Generator) -> np.ndarray:
    """Long-tailed weights over ``n`` classes: a seeded order, weight ∝ 1/rank**zipf."""
    ranks = rng.permutation(n) + 1.0
    w = 1.0 / ranks**zipf
    return w / w.sum()


def plural(category: str) -> str:
    return category + ("es" if category.endswith("s") else "s")


def _draw(spec: Spec, seed: int, size: int):
    rng = stream_rng(seed, "pool", spec.scene_key)
    if spec.dataset == "lr":
        return draw_lr_scene(rng, size), rng
    return draw_scene(spec.dataset, spec.name, rng, size), rng


def _locatable(objects: list[DrawnObject], size: int) -> list[DrawnObject]:
    def inside(o):
        (cx, cy), (w, h) = o.center, o.extent
        return 0 <= cx - w / 2 and cx + w / 2 <= size and 0 <= cy - h / 2 and cy + h / 2 <= size and min(w, h) >= 2

    return [o for o in objects if o.category not in NOT_LOCATABLE and inside(o)]


def _box(obj: DrawnObject, size: int) -> str:
    x1, y1, x2, y2, theta = oriented_box(obj, size)
    return f"{{<{x1}><{y1}><{x2}><{y2}>|{theta}}}"


def _class_prompt(spec: Spec) -> tuple[str, str, list[str]]:
    if spec.dataset == "ucmerced":
        return UCM_PROMPT, spaced_ucm(spec.name), [spaced_ucm(c) for c in UCM_CLASSES]
    return AID_PROMPT, spaced_aid(spec.name), [spaced_aid(c) for c in AID_CLASSES]


def _caption(spec: Spec, objects: list[DrawnObject]) -> str:
    label = spaced_ucm(spec.name) if spec.dataset == "ucmerced" else spaced_aid(spec.name)
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.category] = counts.get(o.category, 0) + 1
    text = f"An aerial image of a {label} scene."
    parts = [f"{n} {c if n == 1 else plural(c)}" for c, n in sorted(counts.items())]
    return text + (f" It shows {', '.join(parts)}." if parts else "")


def ask(spec: Spec, scene, rng: np.random.Generator, size: int) -> tuple[str, str] | None:
    """(prompt, answer) of a record, from what its scene holds; None when the scene cannot support it."""
    if spec.task == "classification":
        prompt, label, _ = _class_prompt(spec)
        return prompt, label
    if spec.task == "vqa":
        qs = lr_questions(scene, rng)
        types = list(VQA_TYPE_SHARES)
        want = types[int(rng.choice(len(types), p=list(VQA_TYPE_SHARES.values())))]
        qtype, question, answer = [q for q in qs if q[0] == want][int(rng.integers(sum(q[0] == want for q in qs)))]
        return question + VQA_SUFFIX, answer
    if spec.task == "caption":
        return CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))], _caption(spec, scene.objects)
    objects = _locatable(scene.objects, size)
    if not objects:
        return None
    target = objects[int(rng.integers(len(objects)))]
    if spec.task == "region":
        return f"[identify] What is the object present at {_box(target, size)}?", target.category
    same = [o for o in objects if o.category == target.category]
    if len(same) > 1:
        target = max(same, key=lambda o: o.extent[0] * o.extent[1])
        ref = f"the largest {target.category}"
    else:
        ref = f"the {target.category}"
    return f"[refer] Give me the location of <p>{ref}</p>", f"<p>{ref}</p> {_box(target, size)}"


def jitter(pixels: np.ndarray, objects: list[DrawnObject], rng: np.random.Generator):
    """A near-duplicate: the same scene shifted by up to 1 px, with a colour gain and fresh noise."""
    dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)), mode="edge")
    out = padded[2 - dy: 2 - dy + h, 2 - dx: 2 - dx + w].astype(np.float32)
    out = out * rng.uniform(0.93, 1.07, 3) + rng.normal(0, 3.0, out.shape)
    moved = [DrawnObject(o.category, (o.center[0] + dx, o.center[1] + dy), o.extent, o.angle) for o in objects]
    return np.clip(out, 0, 255).astype(np.uint8), moved


def degenerate(size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A blank, pure-noise or nearly black image (what broken crops and failed downloads look like)."""
    kind = ("blank", "noise", "dark")[int(rng.integers(3))]
    if kind == "blank":
        return np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8), kind
    if kind == "noise":
        return rng.integers(0, 256, (size, size, 3)).astype(np.uint8), kind
    return rng.integers(0, 12, (size, size, 3)).astype(np.uint8), kind


def wrong_answer(spec: Spec, answer: str, rng: np.random.Generator) -> str:
    """A plausible but false answer of the same kind."""
    if spec.task == "classification":
        _, label, labels = _class_prompt(spec)
        return str(rng.choice([c for c in labels if c != label]))
    swaps = {"yes": "no", "no": "yes", "rural": "urban", "urban": "rural"}
    if answer in swaps:
        return swaps[answer]
    if answer.isdigit():
        return str(int(answer) + int(rng.integers(1, 4)))
    if spec.task == "caption":
        other = str(rng.choice([c for c in UCM_CLASSES if c != spec.name]))
        return f"An aerial image of a {spaced_ucm(other)} scene."
    if "{<" in answer:
        a, b = sorted(int(v) for v in rng.integers(0, 101, 2))
        return answer.split("{<")[0] + f"{{<{a}><{a}><{max(b, a + 1)}><{max(b, a + 1)}>|0}}"
    return str(rng.choice([c for c in ("building", "airplane", "storage tank", "boat", "car") if c != answer]))


def plan_spec(task: str, rng: np.random.Generator, weights: dict[str, np.ndarray], key: int) -> Spec:
    if task == "vqa":
        return Spec(task, "lr", "lr", key)
    dataset = "ucmerced" if rng.random() < 0.5 else "aid"
    names = UCM_CLASSES if dataset == "ucmerced" else AID_CLASSES
    return Spec(task, dataset, names[int(rng.choice(len(names), p=weights[dataset]))], key)


def write_pool(root: Path, seed: int, image_size: int, options: PoolOptions) -> dict:
    """Write ``instruct/geochat_style.json`` + images + meta sidecar; returns composition counts."""
    base = root / "instruct"
    plan = stream_rng(seed, "pool_plan", 0)
    weights = {"ucmerced": class_weights(len(UCM_CLASSES), options.class_zipf, plan),
               "aid": class_weights(len(AID_CLASSES), options.class_zipf, plan)}
    tasks = list(options.task_shares)
    task_p = np.asarray([options.task_shares[t] for t in tasks], float)
    task_p /= task_p.sum()
    records, meta, made = [], [], []  # made: (spec, text rng seed) of non-duplicate records
    key = 0
    while len(records) < options.records:
        i = len(records)
        rid = f"synthrs_{i:06d}"
        duplicate_of = None
        if made and plan.random() < options.duplicate_share:
            j = int(plan.integers(len(made)))
            spec, duplicate_of = made[j][0], made[j][1]
        else:
            spec = plan_spec(tasks[int(plan.choice(len(tasks), p=task_p))], plan, weights, key)
            key += 1
        scene, rng = _draw(spec, seed, image_size)
        pixels, objects = scene.pixels, scene.objects
        if duplicate_of is not None:
            pixels, objects = jitter(pixels, objects, stream_rng(seed, "pool_plan", 1, i))
            scene.objects = objects
        qa = ask(spec, scene, rng, image_size)
        if qa is None:  # e.g. a grounding scene with nothing locatable inside the frame
            continue
        prompt, answer = qa
        noise = None
        if plan.random() < options.noise_share:
            if plan.random() < options.degenerate_share_of_noise:
                pixels, noise = degenerate(image_size, plan)
            else:
                answer, noise = wrong_answer(spec, answer, plan), "wrong_answer"
        save_image(pixels, base / "images" / f"{rid}.png")
        records.append({"id": rid, "image": f"images/{rid}.png",
                        "conversations": [{"from": "human", "value": "<image>\n" + prompt},
                                          {"from": "gpt", "value": answer}]})
        meta.append({"id": rid, **asdict(spec), "duplicate_of": duplicate_of, "noise": noise})
        if duplicate_of is None:
            made.append((spec, rid))
            siblings = sibling_questions(spec, scene, rng, image_size, options.instructions_per_image - 1)
            for task, (prompt, answer) in siblings[: options.records - len(records)]:
                sid = f"synthrs_{len(records):06d}"
                records.append({"id": sid, "image": f"images/{rid}.png",
                                "conversations": [{"from": "human", "value": "<image>\n" + prompt},
                                                  {"from": "gpt", "value": answer}]})
                shared_noise = noise if noise not in (None, "wrong_answer") else None  # a degenerate image
                meta.append({"id": sid, **asdict(spec), "task": task, "duplicate_of": None,
                             "noise": shared_noise, "image_of": rid})
    write_json(base / "geochat_style.json", records, indent=2)
    write_jsonl_atomic(base / "geochat_style_meta.jsonl", meta)
    return summarize(meta)


def sibling_questions(spec: Spec, scene, rng: np.random.Generator, size: int, n: int) -> list[tuple[str, tuple[str, str]]]:
    """Up to ``n`` more ``(task, (prompt, answer))`` on the same scene, each another task where there is one."""
    if n <= 0:
        return []
    if spec.dataset == "lr":
        tasks = ["vqa"] * n
    else:
        others = [t for t in ("classification", "caption", "grounding", "region") if t != spec.task]
        tasks = [others[int(i)] for i in rng.permutation(len(others))][:n]
    out = []
    for task in tasks:
        qa = ask(Spec(task, spec.dataset, spec.name, spec.scene_key), scene, rng, size)
        if qa is not None:
            out.append((task, qa))
    return out


def summarize(meta: list[dict]) -> dict:
    def count(key) -> dict[str, int]:
        return dict(Counter(key(m) for m in meta).most_common())

    return {"records": len(meta), "tasks": count(lambda m: m["task"]),
            "classes": count(lambda m: f"{m['dataset']}/{m['name']}"),
            "duplicates": sum(m["duplicate_of"] is not None for m in meta),
            "images": sum("image_of" not in m for m in meta),
            "noise": {k: v for k, v in count(lambda m: str(m["noise"])).items() if k != "None"}}
