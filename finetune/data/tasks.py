"""Infer a record's task from its prompt and answer (used when the annotation does not say).

Rules, first match wins (patterns from GeoChat_Instruct, LLaVA-1.5 and Mini-InternVL prompts):

1. classification: "Classify the given image in one of the following classes", "Classes:",
   "one of the following (classes|categories)".
2. region: GeoChat "[identify]", or a box in the prompt ("{<x1>..}", "<box>", "[[x1, y1, x2, y2]]",
   "What object is in this location").
3. grounding: "[refer]", "[grounding]", "<ref>", or a box in the answer.
4. vqa: "Answer the question using a single word or phrase", "[vqa]", or a single-turn question
   (prompt ends with "?") whose answer is at most three words.
5. caption: "[caption]", "Describe", "caption", "brief description", "summar".
6. conversation: more than one human/gpt exchange.
7. general: anything else (text-only chat included).
"""

from __future__ import annotations

import re

from finetune.data.records import HUMAN, IMAGE_TOKEN, Record

_CLASSIFICATION = re.compile(r"classify the (given )?image|one of the following (classes|categories)|\bclasses:", re.I)
_BOX = re.compile(r"\{<-?\d+(\.\d+)?>|<box>|\[\[\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*(,|\])")
_REGION = re.compile(r"\[identify\]|what object is in this location", re.I)
_GROUNDING = re.compile(r"\[refer\]|\[grounding\]|<ref>", re.I)
_VQA = re.compile(r"answer the question using a single word or phrase|\[vqa\]", re.I)
_CAPTION = re.compile(r"\[caption\]|\bdescribe\b|\bcaption\b|brief description|summari[sz]e", re.I)


def infer_task(record: Record) -> str:
    """The task of ``record`` by the rules of the module docstring (ignores ``record.task``)."""
    prompt, answer = record.prompt, record.answer
    prompt = prompt.replace(IMAGE_TOKEN, "") if isinstance(prompt, str) else ""
    answer = answer if isinstance(answer, str) else ""
    if _CLASSIFICATION.search(prompt):
        return "classification"
    if _REGION.search(prompt) or _BOX.search(prompt):
        return "region"
    if _GROUNDING.search(prompt) or _BOX.search(answer):
        return "grounding"
    exchanges = sum(1 for t in record.conversations if t.get("from") == HUMAN)
    if _VQA.search(prompt) or (exchanges == 1 and prompt.rstrip().endswith("?") and len(answer.split()) <= 3):
        return "vqa"
    if _CAPTION.search(prompt):
        return "caption"
    if exchanges > 1:
        return "conversation"
    return "general"


def fill_tasks(records: list[Record]) -> list[Record]:
    """Set ``task`` on every record that has none (in place); returns ``records``."""
    for record in records:
        if not record.task:
            record.task = infer_task(record)
    return records
