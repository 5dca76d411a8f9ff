"""Box converters on hand-computed cases, and the Mini-InternVL task helpers."""

from __future__ import annotations

import pytest

from finetune.data import boxes


def test_numbers_scale_between_grids():
    assert boxes.geochat_box_to_internvl([40, 20, 60, 35]) == [400, 200, 600, 350]
    assert boxes.internvl_box_to_geochat([400, 200, 600, 350]) == [40, 20, 60, 35]
    # 0-1000 -> 0-100 rounds half up: 445 -> 44.5 -> 45, 444 -> 44; values are clamped to the grid
    assert boxes.internvl_box_to_geochat([445, 444, 1000, 999]) == [45, 44, 100, 100]
    assert boxes.geochat_box_to_internvl([-1, 0, 100, 101]) == [0, 0, 1000, 1000]


def test_rotated_box_becomes_its_enclosing_box():
    # 20 x 10 box centred on (20, 15), turned 90 degrees: 10 x 20 around the same centre
    assert boxes.geochat_box_to_internvl([10, 10, 30, 20], angle=90) == [150, 50, 250, 250]
    # 45 degrees on a 10 x 10 square centred on (50, 50): half-diagonal 5*sqrt(2) = 7.071
    assert boxes.geochat_box_to_internvl([45, 45, 55, 55], angle=45) == [429, 429, 571, 571]
    assert boxes.geochat_box_to_internvl([10, 10, 30, 20], angle=90, rotated="drop") == [100, 100, 300, 200]
    with pytest.raises(ValueError, match="hull"):
        boxes.geochat_box_to_internvl([0, 0, 1, 1], rotated="spin")


def test_geochat_text_to_internvl_merges_adjacent_boxes():
    text = "two planes {<40><20><60><35>|0}{<1><2><3><4>|0} and a ship {<10><10><30><20>|90}."
    assert boxes.geochat_to_internvl(text) == (
        "two planes <box>[[400, 200, 600, 350], [10, 20, 30, 40]]</box> and a ship <box>[[150, 50, 250, 250]]</box>."
    )


def test_internvl_text_to_geochat_keeps_the_ref_name():
    text = "Here: <ref>plane</ref><box>[[400, 200, 600, 350], [10,20,30,40]]</box>, <box>[[0, 0, 1000, 1000]]</box>"
    assert boxes.internvl_to_geochat(text) == "Here: plane {<40><20><60><35>|0}{<1><2><3><4>|0}, {<0><0><100><100>|0}"


def test_parsers_read_angles_and_both_spellings():
    assert boxes.parse_geochat_boxes("{<1.5><2><3><4>|<-45>} {<1><2><3><4>}") == [([1.5, 2, 3, 4], -45), ([1, 2, 3, 4], 0)]
    assert boxes.parse_internvl_boxes("<ref>car</ref><box>[[1, 2, 3, 4]]</box>") == [("car", [[1, 2, 3, 4]])]
    assert boxes.format_geochat_box([1, 2, 3, 4], 30) == "{<1><2><3><4>|30}"


def test_round_trip_of_text_on_the_coarse_grid():
    text = "the harbor {<12><34><56><78>|0}"
    assert boxes.internvl_to_geochat(boxes.geochat_to_internvl(text)) == text


def test_mini_internvl_task_formats():
    assert boxes.normalize_box([64, 32, 128, 256], width=256, height=256) == [250, 125, 500, 1000]
    assert boxes.denormalize_box([250, 125, 500, 1000], 256, 256) == [64, 32, 128, 256]
    assert boxes.classification_prompt(["forest", "river"], prefix="Pick one:", suffix="Answer with the label.") == (
        "<image>\nPick one: forest, river.\nAnswer with the label."
    )
    assert boxes.grounding_answer("ship", [100, 200, 300, 400]) == "<ref>ship</ref><box>[[100, 200], [300, 400]]</box>"
    assert boxes.parse_grounding_answer("<ref>ship</ref><box>[[100, 200], [300, 400]]</box>") == [[100, 200, 300, 400]]
    assert boxes.region_question([1, 2, 3, 4]) == "What object is in this location[[1, 2, 3, 4]]"
    assert boxes.region_answer("car", [1, 2, 3, 4]) == "car[[1, 2, 3, 4]]"
