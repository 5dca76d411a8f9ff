"""Compat fix remote_tokenizer_class_ignored: InternLM2's sentencepiece-only tokenizer under transformers 5.

The stand-in (``write_internlm2_sentencepiece_tokenizer``) is laid out as on the Hub: ``tokenizer.model`` +
``tokenization_internlm2.py``, no ``tokenizer.json``, ``<|im_end|>``/``<|im_start|>`` declared at the ids
of sentencepiece pieces. The expected ids come from sentencepiece itself, not from our code.
"""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm

from finetune.models.compat import compare_with_own_tokenizer, load_tokenizer
from finetune.models.standins import SP_ADDED_AFTER, write_internlm2_sentencepiece_tokenizer

SENTENCE = "Describe the image in detail. The image shows a beach"
NAMED_BY = ("tokenizer_class", "config_auto_map", "tokenizer_auto_map")


@pytest.fixture(scope="module")
def sp_folders(tmp_path_factory):
    """One checkpoint folder per place the remote class is named in."""
    folders = {}
    for named_by in NAMED_BY:
        out = tmp_path_factory.mktemp(f"sp_{named_by}")
        (out / "config.json").write_text(json.dumps({"model_type": "internlm2", "architectures": ["InternLM2ForCausalLM"]}))
        folders[named_by] = write_internlm2_sentencepiece_tokenizer(out, class_named_by=named_by)
    return folders


def sentencepiece_ids(folder, text: str) -> list[int]:
    """What InternLM2's slow tokenizer gives: ``<s>`` + sentencepiece's own encoding."""
    return [1] + spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).encode(text)


def expected_special_ids(folder) -> dict[str, int]:
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    ids = {"<|im_end|>": pieces.piece_to_id("[UNUSED_TOKEN_145]"), "<|im_start|>": pieces.piece_to_id("[UNUSED_TOKEN_146]")}
    return ids | {token: pieces.get_piece_size() + i for i, token in enumerate(SP_ADDED_AFTER)}


@pytest.mark.parametrize("named_by", ["tokenizer_class", "config_auto_map"])
def test_auto_tokenizer_passes_over_the_remote_class(sp_folders, named_by):
    """The failure: without the fix, a generic tokenizer with other ids, and no error."""
    folder = sp_folders[named_by]
    broken, applied = load_tokenizer(folder, exclude_fixes=["remote_tokenizer_class_ignored"])
    assert applied == [] and type(broken).__name__ != "InternLM2Tokenizer"
    assert broken(SENTENCE)["input_ids"] != sentencepiece_ids(folder, SENTENCE)


@pytest.mark.parametrize("named_by", ["tokenizer_class", "config_auto_map"])
def test_load_tokenizer_uses_the_checkpoints_own_class(sp_folders, named_by):
    folder = sp_folders[named_by]
    tokenizer, applied = load_tokenizer(folder)
    assert applied == ["remote_tokenizer_class_ignored"] and type(tokenizer).__name__ == "InternLM2Tokenizer"
    assert tokenizer(SENTENCE)["input_ids"] == sentencepiece_ids(folder, SENTENCE)
    expected = expected_special_ids(folder)
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in expected} == expected
    prompt = tokenizer("<|im_start|>user\nbeach<|im_end|>", add_special_tokens=False)["input_ids"]
    assert prompt[0] == expected["<|im_start|>"] and prompt[-1] == expected["<|im_end|>"]


def test_no_fix_where_transformers_finds_the_class_itself(sp_folders):
    tokenizer, applied = load_tokenizer(sp_folders["tokenizer_auto_map"])
    assert applied == [] and type(tokenizer).__name__ == "InternLM2Tokenizer"


def test_compare_with_own_tokenizer_names_the_differences(sp_folders):
    folder = sp_folders["tokenizer_class"]
    broken, _ = load_tokenizer(folder, exclude_fixes=["remote_tokenizer_class_ignored"])
    reference, differences = compare_with_own_tokenizer(broken, folder, ["<|im_end|>", "<IMG_CONTEXT>"], SENTENCE)
    assert reference == "tokenization_internlm2.InternLM2Tokenizer"
    assert any(SENTENCE in d for d in differences)
    fixed, _ = load_tokenizer(folder)
    assert compare_with_own_tokenizer(fixed, folder, ["<|im_end|>", "<IMG_CONTEXT>"], SENTENCE)[1] == []
