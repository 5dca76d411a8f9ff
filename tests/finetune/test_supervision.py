"""Label masks, truncation and dropping on hand-made conversations (exact ids)."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from finetune.data.records import Record
from finetune.models.adapters import internvl_hf
from finetune.models.adapters import supervision as sv
from finetune.models.adapters.supervision import IGNORE_INDEX, SkipSample


@pytest.fixture(scope="module")
def processor(tiny_internvl):
    return AutoProcessor.from_pretrained(tiny_internvl)


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def two_turns():
    return Record(id="r1", images=["a.png"], conversations=[
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "forest"},
        {"from": "human", "value": "Is there a river?"}, {"from": "gpt", "value": "no"},
    ])


def test_labels_only_on_answers_and_their_end_token(processor):
    tok = processor.tokenizer
    out = internvl_hf.encode_for_training(processor, two_turns(), [(64, 64)], 512)
    img = [tok.convert_tokens_to_ids("<img>")] + [tok.convert_tokens_to_ids("<IMG_CONTEXT>")] * 16 + [
        tok.convert_tokens_to_ids("</img>")]
    expected_ids = (
        ids(tok, "<|im_start|>user\n") + img + ids(tok, "\nWhat is it?<|im_end|>\n")
        + ids(tok, "<|im_start|>assistant\n") + ids(tok, "forest<|im_end|>") + ids(tok, "\n")
        + ids(tok, "<|im_start|>user\nIs there a river?<|im_end|>\n")
        + ids(tok, "<|im_start|>assistant\n") + ids(tok, "no<|im_end|>") + ids(tok, "\n")
    )
    assert out["input_ids"] == expected_ids
    # Same ids as the processor's own expansion of the whole conversation string.
    text = ("<|im_start|>user\n<IMG_CONTEXT>\nWhat is it?<|im_end|>\n<|im_start|>assistant\nforest<|im_end|>\n"
            "<|im_start|>user\nIs there a river?<|im_end|>\n<|im_start|>assistant\nno<|im_end|>\n")
    from PIL import Image

    whole = processor(text=[text], images=[Image.new("RGB", (64, 64))], crop_to_patches=False)["input_ids"][0]
    assert list(whole) == expected_ids
    supervised = [t for t, lab in zip(out["input_ids"], out["labels"], strict=True) if lab != IGNORE_INDEX]
    assert supervised == ids(tok, "forest<|im_end|>") + ids(tok, "no<|im_end|>")
    assert [lab for lab in out["labels"] if lab != IGNORE_INDEX] == supervised
    assert out["truncated"] is False


def test_over_long_sample_truncated_in_text_never_in_image(processor):
    record = two_turns()
    full = internvl_hf.encode_for_training(processor, record, [(64, 64)], 512)
    cut = internvl_hf.encode_for_training(processor, record, [(64, 64)], len(full["input_ids"]) - 3)
    assert cut["truncated"] is True
    assert cut["input_ids"] == full["input_ids"][:-3] and cut["labels"] == full["labels"][:-3]
    with pytest.raises(SkipSample) as err:  # the 18-token image span would be cut
        internvl_hf.encode_for_training(processor, record, [(64, 64)], 12)
    assert err.value.reason == "image_span_over_max_length"
    with pytest.raises(SkipSample) as err:
        internvl_hf.encode_for_training(processor, record, [(64, 64)], 30, too_long="drop")
    assert err.value.reason == "too_long"
    first_answer = full["labels"].index(next(lab for lab in full["labels"] if lab != IGNORE_INDEX))
    with pytest.raises(SkipSample) as err:  # cut before any answer token: nothing left to learn
        internvl_hf.encode_for_training(processor, record, [(64, 64)], first_answer)
    assert err.value.reason == "no_answer_within_max_length"


def test_dynamic_tiles_from_sizes_match_the_processor(processor):
    from PIL import Image

    class Cfg:
        max_dynamic_patch = 6

    record = Record(id="w", images=["w.png"], conversations=[{"from": "human", "value": "<image>\nq"},
                                                          {"from": "gpt", "value": "a"}])
    image = Image.new("RGB", (200, 70))
    by_size = internvl_hf.encode_for_training(processor, record, [image.size], 4096, model_cfg=Cfg)
    by_pixels = internvl_hf.encode_for_training(processor, record, [image], 4096, model_cfg=Cfg)
    assert by_size["input_ids"] == by_pixels["input_ids"]
    tiles = by_pixels["pixel_values"].shape[0]
    assert tiles == 4  # 3 x 1 grid + thumbnail
    assert by_pixels["input_ids"].count(processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")) == 16 * tiles


def test_placeholders_added_or_mismatch_skipped():
    no_placeholder = Record(id="a", images=["x.png"], conversations=[{"from": "human", "value": "q"},
                                                                   {"from": "gpt", "value": "a"}])
    assert sv.conversation_turns(no_placeholder)[0] == ("human", "<image>\nq")
    two_for_one = Record(id="b", images=["x.png"], conversations=[{"from": "human", "value": "<image><image>q"},
                                                                {"from": "gpt", "value": "a"}])
    with pytest.raises(SkipSample, match="image_placeholder_mismatch"):
        sv.conversation_turns(two_for_one)
    no_answer = Record(id="c", images=[], conversations=[{"from": "human", "value": "q"}])
    with pytest.raises(SkipSample, match="no_assistant_turn"):
        sv.conversation_turns(no_answer)
