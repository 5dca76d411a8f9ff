"""The pretraining corpus of the proxy base model: ``pretrain/corpus.json`` (LLaVA) + images.

What a pretrained VLM has seen before it is fine-tuned on GeoChat_Instruct: captions and general
questions about scenes of every class. The corpus is kept apart from what fine-tuning and evaluation
use, so that a fine-tuned proxy measures what the instruction pool adds:

- its scenes come from their own random stream (``pretrain``), disjoint from the pool's and every
  benchmark's (a test compares pixel hashes);
- its prompts are other templates than the pool's and the benchmarks' (no prompt of the corpus equals
  a pool or benchmark prompt; tested): no "Classify the given image ..." list prompt, no RSVQA phrasing,
  no "[refer]"/"[identify]" task tokens, and answers in its own words ("town"/"countryside" rather than
  "urban"/"rural", sentences as well as bare names).

Every UCMerced and AID class is drawn equally often (a pretrained model knows the head *and* the tail;
the long tail is the fine-tuning pool's), and a share of RSVQA-LR-style land-cover scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.files import write_jsonl_atomic
from geotune.synth.layouts import save_image, stream_rng, write_json
from geotune.synth.pool import plural
from geotune.synth.scenes import UCM_CLASSES, spaced_ucm
from geotune.synth.scenes_aid import AID_CLASSES, draw_scene, spaced_aid
from geotune.synth.vqa import COUNTABLE, draw_lr_scene

LAND_COVER_SHARE = 0.3  # share of RSVQA-LR-style scenes; the rest are UCMerced/AID class scenes

# Prompts of the corpus: none of them is a pool or benchmark prompt. A pretrained VLM follows
# instructions it has not seen in these exact words, so the corpus asks each thing in several
# phrasings, with several ways of saying how to answer (a short-answer cue, a list of options to pick
# from), in the answer vocabulary the benchmarks score ("yes"/"no", "urban"/"rural", numbers, class
# names) as well as in its own words ("town"/"countryside", sentences).
CLASS_QUESTIONS = (
    "Which kind of place does this overhead photo show? Reply with the category only.",
    "Name the land use seen from above here, in a few words.",
)
CHOICE_QUESTIONS = (
    "Pick the category of this overhead photo from this list: {options}. Reply with the category only.",
    "Options: {options}. Which one describes this aerial picture best? Give just its name.",
    "Here are some kinds of land use: {options}. Which of them is shown in this view from above?",
    "Sort this satellite picture into one of these scene types: {options}. Name the type.",
)
CAPTION_QUESTIONS = ("Write one sentence about this overhead view.", "What can be seen in this aerial picture?")
COUNT_QUESTIONS = ("Count the {things} in this overhead picture.",
                   "How many {things} can you make out in this view? Give a number.")
SPOT_QUESTIONS = ("Can you spot any {thing} in this picture?",
                  "Reply yes or no: does this view contain a {thing}?",
                  "Is any {thing} visible from above here? One word.")
SETTLEMENT_QUESTIONS = ("Does this place look like a town or like the countryside?",
                        "Would you call this area urban or rural? One word, please.")
MAJORITY_QUESTIONS = ("Which are more numerous in this view, {a} or {b}?",
                      "Reply yes or no: does this view hold more {a} than {b}?",
                      "Yes or no: are the {a} here fewer than the {b}?",
                      "Answer yes or no: do the {a} and the {b} come in equal numbers here?")


def _label(dataset: str, name: str) -> str:
    return spaced_ucm(name) if dataset == "ucmerced" else spaced_aid(name)


def _counts(objects) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.category] = counts.get(o.category, 0) + 1
    return counts


def _pick(options, rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def choice_prompt(dataset: str, name: str, rng: np.random.Generator) -> str:
    """A multiple-choice class question: the true class among 4 to all of its dataset's classes, shuffled."""
    names = UCM_CLASSES if dataset == "ucmerced" else AID_CLASSES
    others = [n for n in names if n != name]
    k = int(rng.integers(3, len(others) + 1))
    chosen = [name, *(others[int(i)] for i in rng.choice(len(others), k, replace=False))]
    options = [_label(dataset, chosen[int(i)]) for i in rng.permutation(len(chosen))]
    return _pick(CHOICE_QUESTIONS, rng).format(options=", ".join(options))


def class_scene_qa(dataset: str, name: str, objects, rng: np.random.Generator) -> tuple[str, str]:
    """One (prompt, answer) about a class scene: its category (open or from options), a caption, or a count."""
    label = _label(dataset, name)
    counts = _counts(objects)
    form = int(rng.integers(5))
    if form == 0:
        return CLASS_QUESTIONS[0], label
    if form == 1:
        return CLASS_QUESTIONS[1], f"It is {label} seen from above."
    if form == 2:
        return choice_prompt(dataset, name, rng), label
    if form == 3 or not counts:
        parts = [f"{n} {c if n == 1 else plural(c)}" for c, n in sorted(counts.items())]
        tail = f", with {', '.join(parts)}" if parts else ""
        return _pick(CAPTION_QUESTIONS, rng), f"Seen from above: {label}{tail}."
    thing = sorted(counts)[int(rng.integers(len(counts)))]
    return _pick(COUNT_QUESTIONS, rng).format(things=plural(thing)), str(counts[thing])


def land_cover_qa(scene, rng: np.random.Generator) -> tuple[str, str]:
    """One (prompt, answer) about an RSVQA-LR-style scene, in the corpus's own phrasings."""
    c = scene.counts
    form = int(rng.integers(4))
    if form == 0:
        if rng.random() < 0.5:
            return SETTLEMENT_QUESTIONS[0], "a town" if scene.urban else "the countryside"
        return SETTLEMENT_QUESTIONS[1], "urban" if scene.urban else "rural"
    if form == 1:
        thing = ("building", "road", "water area", "farmland", "forest")[int(rng.integers(5))]
        return _pick(SPOT_QUESTIONS, rng).format(thing=thing), "yes" if c[thing] > 0 else "no"
    cats = list(COUNTABLE)
    if form == 2:
        thing = cats[int(rng.integers(len(cats)))]
        return _pick(COUNT_QUESTIONS, rng).format(things=COUNTABLE[thing]), str(c[thing])
    a, b = (cats[int(i)] for i in rng.choice(len(cats), 2, replace=False))
    which = int(rng.integers(len(MAJORITY_QUESTIONS)))
    question = MAJORITY_QUESTIONS[which].format(a=COUNTABLE[a], b=COUNTABLE[b])
    if which == 0:
        return question, COUNTABLE[a] if c[a] > c[b] else COUNTABLE[b] if c[b] > c[a] else "neither, they are equal"
    truth = (c[a] > c[b], c[a] < c[b], c[a] == c[b])[which - 1]
    return question, "yes" if truth else "no"


def write_pretrain(root: Path, seed: int, records: int, image_size: int) -> dict[str, int]:
    """Write ``pretrain/corpus.json``, ``pretrain/images/`` and ``pretrain/corpus_meta.jsonl`` (per record:
    dataset and class of its scene); returns counts by scene kind.

    Class scenes cycle through every UCMerced and AID class in turn (equal counts), each record from
    its own ``pretrain`` stream.
    """
    base = root / "pretrain"
    classes = [("ucmerced", c) for c in UCM_CLASSES] + [("aid", c) for c in AID_CLASSES]
    rows, meta, kinds, next_class = [], [], {"class_scene": 0, "land_cover": 0}, 0
    for i in range(records):
        rng = stream_rng(seed, "pretrain", i)
        if rng.random() < LAND_COVER_SHARE:
            scene = draw_lr_scene(rng, image_size)
            prompt, answer = land_cover_qa(scene, rng)
            kinds["land_cover"] += 1
            dataset, name = "lr", "urban" if scene.urban else "rural"
        else:
            dataset, name = classes[next_class % len(classes)]
            next_class += 1
            scene = draw_scene(dataset, name, rng, image_size)
            prompt, answer = class_scene_qa(dataset, name, scene.objects, rng)
            kinds["class_scene"] += 1
        rid = f"pretrain_{i:06d}"
        save_image(scene.pixels, base / "images" / f"{rid}.png")
        rows.append({"id": rid, "image": f"images/{rid}.png",
                     "conversations": [{"from": "human", "value": "<image>\n" + prompt},
                                       {"from": "gpt", "value": answer}]})
        meta.append({"id": rid, "dataset": dataset, "name": name})
    write_json(base / "corpus.json", rows, indent=1)
    write_jsonl_atomic(base / "corpus_meta.jsonl", meta)
    return {"records": len(rows), **kinds}
