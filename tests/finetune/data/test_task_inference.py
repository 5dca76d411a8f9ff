"""Task inference from GeoChat / LLaVA / Mini-InternVL prompt patterns."""

from __future__ import annotations

import pytest

from finetune.data.records import Record
from finetune.data.tasks import fill_tasks, infer_task


def _record(*turns: str, images: int = 1) -> Record:
    return Record("r", ["x.png"] * images, [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(turns)])


CASES = [
    ("classification", ("<image>\nClassify the given image in one of the following classes. Classes: forest, river. \nAnswer in one word or a short phrase.", "forest")),
    ("classification", ("<image>\nClassify the image into one of the following categories: a, b.", "a")),
    ("region", ("<image>\n[identify] what is this {<10><10><20><20>|0}", "a car")),
    ("region", ("<image>\nWhat object is in this location[[1, 2, 3, 4]]", "ship[[1, 2, 3, 4]]")),
    ("grounding", ("<image>\n[refer] give me the location of <p>plane</p>", "{<40><20><60><35>|0}")),
    ("grounding", ("<image>\n[grounding] describe the image in detail", "A plane {<40><20><60><35>|0} on a runway.")),
    ("grounding", ("<image>\nWhere is the ship?", "<ref>ship</ref><box>[[1, 2, 3, 4]]</box>")),
    ("vqa", ("<image>\nIs there a road? Answer the question using a single word or phrase.", "Yes")),
    ("vqa", ("<image>\nHow many ships are there?", "3")),
    ("caption", ("<image>\nDescribe the image in detail.", "A harbour with many ships and a long pier in the middle.")),
    ("caption", ("<image>\n[caption] Give a brief description", "A farm.")),
    ("conversation", ("<image>\nWhat do you see here?", "A long story about fields.", "And then?", "More fields, stretching far.")),
    ("general", ("Write a poem about the sea.", "The sea is wide and deep and blue.")),
]


@pytest.mark.parametrize("task, turns", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_infer_task(task, turns):
    assert infer_task(_record(*turns, images=1 if "<image>" in turns[0] else 0)) == task


def test_fill_tasks_keeps_given_tasks():
    given = _record("<image>\nDescribe it.", "A farm.")
    given.task = "vqa"
    absent = _record("<image>\nDescribe it.", "A farm.")
    fill_tasks([given, absent])
    assert (given.task, absent.task) == ("vqa", "caption")
