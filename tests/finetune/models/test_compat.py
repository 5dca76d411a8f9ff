"""Compat layer: each fix's failure is reproduced by our stand-in remote code, and the fix removes it.

Every test loads a fresh copy of a stand-in checkpoint (new folder name -> new dynamic module) through
``trust_remote_code``; ``exclude_fixes=[name]`` loads it with every fix but one, which must show exactly
that fix's failure under the installed transformers.
"""

from __future__ import annotations

import json
import logging
import shutil
import types

import pytest
import torch
from remote_failures import (
    build_standin,
    file_hashes,
    fresh_copy,
    fresh_folder,
    tiny_tokenizer,
)
from safetensors.torch import load_file, save_file

from finetune.models.compat import (
    FIX_NAMES,
    FIXES,
    CompatContext,
    RemoteCodeError,
    apply_fixes,
    load_remote_model,
)
from finetune.models.compat.fixes_lm import _attn_mask_utils_missing, _generate_passes_cache

# The stand-in imports transformers.modeling_attn_mask_utils like the real InternLM2 code; transformers
# releases without that module need the shim fix, older ones do not.
MASK_UTILS_FIX = ["removed_attn_mask_utils"] if _attn_mask_utils_missing() else []
# Likewise for generate's `cache=` argument (transformers >= 5.24) vs the remote `past_key_values`.
CACHE_RENAME_FIX = ["renamed_cache_argument"] if _generate_passes_cache() else []


def load(standins, kind, tmp_path, exclude=(), **kwargs):
    kwargs.setdefault("vision_tower_path", standins["clip"])
    return load_remote_model(fresh_copy(standins[kind], tmp_path), family=kind, exclude_fixes=exclude, **kwargs)


def prompt_ids(n=12, seed=0):
    return torch.randint(10, 500, (1, n), generator=torch.Generator().manual_seed(seed))


def greedy_uncached(model, ids, n):
    out = ids
    for _ in range(n):
        logits = model(input_ids=out, use_cache=False).logits[:, -1]
        out = torch.cat([out, logits.argmax(-1, keepdim=True)], 1)
    return out[:, ids.shape[1]:]


def assert_trains_and_generates(model, ids):
    loss = model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()
    with torch.no_grad():
        cached = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert torch.equal(cached[:, ids.shape[1]:], greedy_uncached(model, ids, 5))


def test_every_fix_has_a_name_versions_and_a_docstring():
    assert len(set(FIX_NAMES)) == len(FIXES) == 18
    for fix in FIXES:
        assert fix.affects and fix.apply.__doc__ and len(fix.summary) < 160, fix.name


def test_internlm2_loads_trains_generates_with_files_untouched(standins, tmp_path, caplog):
    before = file_hashes(standins["internlm2"])
    with caplog.at_level(logging.INFO, logger="finetune.models.compat"):
        model, fixes = load(standins, "internlm2", tmp_path, auto_class="AutoModelForCausalLM")
    assert fixes == [*MASK_UTILS_FIX, "rope_scaling_null_rewritten", "tied_weights_keys_list", "missing_generation_mixin", "legacy_tuple_kv_cache",
                     "generation_position_ids", *CACHE_RENAME_FIX, "rotary_buffers_after_meta_init"]
    assert all(f"compat fix {name}" in caplog.text for name in fixes)
    assert_trains_and_generates(model, prompt_ids())
    copy = next(p for p in tmp_path.iterdir() if p.name.startswith("internlm2_"))
    assert file_hashes(copy) == before  # nothing on disk was rewritten


def test_second_load_of_the_same_folder_reports_the_same_fixes(standins, tmp_path):
    folder = fresh_copy(standins["internlm2"], tmp_path)
    _, first = load_remote_model(folder, family="internlm2")
    _, second = load_remote_model(folder, family="internlm2")
    assert first == second


def test_tied_weights_keys_list(standins, tmp_path):
    broken, _ = load(standins, "internlm2", tmp_path, exclude=["tied_weights_keys_list"])
    with pytest.raises(AttributeError, match="'list' object has no attribute 'keys'"):
        broken.save_pretrained(tmp_path / "saved-broken")
    model, _ = load(standins, "internlm2", tmp_path)
    saved = fresh_folder(tmp_path, "saved")
    model.save_pretrained(saved)
    reloaded, _ = load_remote_model(saved, family="internlm2")
    ids = prompt_ids()
    assert torch.equal(model(input_ids=ids).logits, reloaded(input_ids=ids).logits)


def test_rotary_buffers_after_meta_init(standins, tmp_path):
    ids = prompt_ids()
    broken, _ = load(standins, "internlm2", tmp_path, exclude=["rotary_buffers_after_meta_init"])
    rotary = broken.model.layers[0].attention.rotary_emb
    expected = 1.0 / (rotary.base ** (torch.arange(0, rotary.dim, 2).float() / rotary.dim))
    assert not torch.allclose(rotary.inv_freq, expected)  # garbage from uninitialised memory
    model, _ = load(standins, "internlm2", tmp_path)
    assert torch.allclose(model.model.layers[0].attention.rotary_emb.inv_freq, expected)
    assert not torch.allclose(broken(input_ids=ids).logits, model(input_ids=ids).logits, equal_nan=True)


def test_rope_scaling_null_rewritten(standins, tmp_path):
    """``rope_scaling: null`` (as on the Hub) reaches InternLM2's ``_init_rope`` as a dict without 'type'."""
    for kind in ("internlm2", "internvl_chat"):  # top-level config; nested llm_config
        with pytest.raises(KeyError, match="'type'"):
            load(standins, kind, tmp_path, exclude=["rope_scaling_null_rewritten"])
    model, fixes = load(standins, "internvl_chat", tmp_path)
    assert "rope_scaling_null_rewritten" in fixes and model.config.llm_config.rope_scaling is None
    assert_trains_and_generates(model.language_model, prompt_ids())
    folder = fresh_copy(standins["internlm2"], tmp_path)  # a real scaling dict keeps its 'type': no fix
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": {"type": "dynamic", "factor": 2.0}}))
    model, fixes = load_remote_model(folder, family="internlm2")
    assert "rope_scaling_null_rewritten" not in fixes
    assert type(model.model.layers[0].attention.rotary_emb).__name__ == "InternLM2DynamicNTKScalingRotaryEmbedding"


def test_legacy_tuple_kv_cache(standins, tmp_path):
    broken, _ = load(standins, "internlm2", tmp_path, exclude=["legacy_tuple_kv_cache"])
    with pytest.raises(TypeError, match="'DynamicCache' object is not subscriptable"):
        broken.generate(prompt_ids(), max_new_tokens=3, do_sample=False)


def forward_lengths(model):
    """Sequence length of every forward call (input_ids or inputs_embeds), recorded by a pre-hook."""
    lengths = []

    def record(module, args, kwargs):
        given = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        lengths.append(given.shape[1])

    model.register_forward_pre_hook(record, with_kwargs=True)
    return lengths


@pytest.mark.skipif(not _generate_passes_cache(), reason="this transformers passes the cache as past_key_values")
def test_renamed_cache_argument(standins, tmp_path):
    ids = prompt_ids()
    broken, _ = load(standins, "internlm2", tmp_path, exclude=["renamed_cache_argument"])
    model, fixes = load(standins, "internlm2", tmp_path)
    assert "renamed_cache_argument" in fixes
    broken_lengths, lengths = forward_lengths(broken), forward_lengths(model)
    kwargs = {"attention_mask": torch.ones_like(ids), "max_new_tokens": 4, "do_sample": False}
    # Same tokens either way: without the fix the cache is silently dropped and every step re-runs everything.
    assert torch.equal(broken.generate(ids, **kwargs), model.generate(ids, **kwargs))
    assert broken_lengths == [12, 13, 14, 15]
    assert lengths == [12, 1, 1, 1]
    assert torch.equal(model.generate(ids, **kwargs)[:, 12:], greedy_uncached(model, ids, 4))


def test_generation_position_ids(standins, tmp_path):
    ids = prompt_ids()
    broken, _ = load(standins, "internlm2", tmp_path, exclude=["generation_position_ids"])
    with pytest.raises(RuntimeError, match="must match the size"):
        broken.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)


def test_missing_generation_mixin_and_post_init_in_internvl(standins, tmp_path):
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        load(standins, "internvl_chat", tmp_path, exclude=["missing_post_init"])
    broken, _ = load(standins, "internvl_chat", tmp_path, exclude=["missing_generation_mixin"])
    assert not hasattr(broken.language_model, "generate")  # the nested LM; the auto class only fixes the top
    model, fixes = load(standins, "internvl_chat", tmp_path)
    assert {"missing_generation_mixin", "missing_post_init", "required_image_flags"} <= set(fixes)
    assert_trains_and_generates(model.language_model, prompt_ids())


def internvl_batch(model):
    tokenizer = tiny_tokenizer()
    model.img_context_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    image = torch.full((1, model.num_image_token), model.img_context_token_id)
    ids = torch.cat([prompt_ids(4), image, prompt_ids(6, seed=1)], 1)
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), ids


def test_required_image_flags(standins, tmp_path):
    broken, _ = load(standins, "internvl_chat", tmp_path, exclude=["required_image_flags"])
    pixels, ids = internvl_batch(broken)
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'squeeze'"):
        broken(pixel_values=pixels, input_ids=ids, labels=ids)
    model, _ = load(standins, "internvl_chat", tmp_path)
    model.img_context_token_id = broken.img_context_token_id
    without_flags = model(pixel_values=pixels, input_ids=ids, labels=ids).loss
    with_flags = model(pixel_values=pixels, input_ids=ids, labels=ids, image_flags=torch.ones(1, 1, dtype=torch.long)).loss
    assert torch.isfinite(without_flags) and without_flags.item() == with_flags.item()
    without_flags.backward()
    assert torch.isfinite(model.mlp1[1].weight.grad).all() and model.mlp1[1].weight.grad.abs().sum() > 0
    generated = model.generate(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failure needs a machine without CUDA")
def test_cuda_calls_on_cpu(standins, tmp_path):
    tokenizer = tiny_tokenizer()
    broken, _ = load(standins, "internvl_chat", tmp_path, exclude=["cuda_calls_on_cpu"])
    pixels, _ = internvl_batch(broken)
    with pytest.raises((RuntimeError, AssertionError), match="(?i)cuda|nvidia"):
        broken.chat(tokenizer, pixels, "what is it?", {"max_new_tokens": 2, "do_sample": False})
    model, _ = load(standins, "internvl_chat", tmp_path)
    assert isinstance(model.chat(tokenizer, pixels, "what is it?", {"max_new_tokens": 2, "do_sample": False}), str)
    xc2, _ = load(standins, "xcomposer2", tmp_path)
    assert isinstance(xc2.chat(tokenizer, "hello", max_new_tokens=2), str)
    assert torch.Tensor.cuda is not None and "geotune" not in repr(torch.Tensor.cuda)  # restored after the call


def test_missing_config_max_length(standins, tmp_path):
    with pytest.raises(AttributeError, match="has no attribute 'max_length'"):
        load(standins, "xcomposer2", tmp_path, exclude=["missing_config_max_length"])
    model, _ = load(standins, "xcomposer2", tmp_path)
    assert model.max_length == 128 and getattr(model.config, "max_length", None) is None  # generate stays allowed


def test_nested_clip_from_pretrained(standins, tmp_path):
    with pytest.raises(RuntimeError, match="meta device"):
        load(standins, "xcomposer2", tmp_path, exclude=["nested_clip_from_pretrained"])
    with pytest.raises(RemoteCodeError, match="model.vision_tower_path"):
        load(standins, "xcomposer2", tmp_path, vision_tower_path=None)
    with pytest.raises(RemoteCodeError, match="not a CLIP checkpoint folder"):
        load(standins, "xcomposer2", tmp_path, vision_tower_path=str(tmp_path))


def test_clip_vision_model_attr(standins, tmp_path):
    with pytest.raises(AttributeError, match="has no attribute 'vision_model'"):
        load(standins, "xcomposer2", tmp_path, exclude=["clip_vision_model_attr"])


def test_clip_resized_position_table(standins, tmp_path):
    with pytest.raises(RuntimeError, match="size of tensor a \\(26\\) must match the size of tensor b \\(17\\)"):
        load(standins, "xcomposer2", tmp_path, exclude=["clip_resized_position_table"])
    model, _ = load(standins, "xcomposer2", tmp_path)
    embeddings = model.vit.vision_tower.embeddings
    assert (embeddings.image_size, embeddings.num_patches) == (70, 25)
    assert model.vit(torch.zeros(1, 3, 70, 70)).shape == (1, 25, 32)  # 70 px (real: 490) accepted
    embeddings.__class__ = embeddings.__class__.__bases__[0]  # plain CLIP embeddings: the size check is back
    with pytest.raises(ValueError, match=r"Input image size \(70\*70\) doesn't match model \(56\*56\)"):
        model.vit(torch.zeros(1, 3, 70, 70))


XC2_TEXT = "<|im_start|>user\n<ImageHere>what is it<|im_end|>\n<|im_start|>assistant\nbeach<|im_end|>\n"


def xc2_targets(model):
    tokenizer = tiny_tokenizer()
    model.tokenizer = tokenizer
    ids = tokenizer(XC2_TEXT.replace("<ImageHere>", ""), return_tensors="pt", add_special_tokens=False).input_ids
    return tokenizer, ids, model.mask_human_targets(ids)


def test_hard_coded_token_ids(standins, tmp_path):
    broken, _ = load(standins, "xcomposer2", tmp_path, exclude=["hard_coded_token_ids"])
    tokenizer, ids, targets = xc2_targets(broken)
    # 92542 never occurs with this tokenizer and its <|im_end|> is id 2, read as eos: the human turn is
    # supervised and the answer is not.
    kept = tokenizer.decode(ids[0][targets[0] != -100])
    assert "what is it" in kept and "beach" not in kept
    model, fixes = load(standins, "xcomposer2", tmp_path)
    assert "hard_coded_token_ids" in fixes
    tokenizer, ids, targets = xc2_targets(model)
    # The real rule, now on this tokenizer's <|im_end|>: mask through the human turn's <|im_end|> + 5 tokens
    # (the length of InternLM2's "<|im_start|>assistant\n"), keep up to the token after the answer's.
    human_end, answer_end = (ids[0] == tokenizer.convert_tokens_to_ids("<|im_end|>")).nonzero()[:, 0].tolist()
    expected = torch.full_like(ids, -100)
    expected[0, human_end + 6 : answer_end + 2] = ids[0, human_end + 6 : answer_end + 2]
    assert torch.equal(targets, expected)
    assert "beach<|im_end|>" in tokenizer.decode(ids[0][targets[0] != -100])
    image = model.vis_processor(__import__("PIL.Image").Image.new("RGB", (90, 80), (200, 40, 10))).unsqueeze(0)
    loss = model(samples={"data_type": ["multi"], "text_input": [[XC2_TEXT]], "image": [image]}).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.vision_proj[0].weight.grad.abs().sum() > 0


def test_xcomposer2_trains_and_generates(standins, tmp_path):
    model, fixes = load(standins, "xcomposer2", tmp_path)
    assert set(fixes) >= {"missing_config_max_length", "nested_clip_from_pretrained", "clip_vision_model_attr",
                          "clip_resized_position_table", "legacy_tuple_kv_cache", "rotary_buffers_after_meta_init"}
    assert_trains_and_generates(model, prompt_ids())


def test_missing_remote_imports(tmp_path):
    pytest.importorskip("transformers")
    if __import__("importlib.util").util.find_spec("timm") is not None:
        pytest.skip("timm is installed: the failure needs it missing")
    folder = build_standin("intern_vit_timm", tmp_path)
    with pytest.raises(ImportError, match="timm"):
        load_remote_model(folder, family="internvl_remote", exclude_fixes=["missing_remote_imports"])
    with pytest.raises(RemoteCodeError, match=r"pip install 'geotune\[remote\]'"):
        load_remote_model(folder, family="internvl_remote")


def test_clear_errors_before_any_code_runs(standins, tmp_path):
    with pytest.raises(RemoteCodeError, match="model.trust_remote_code=true"):
        load(standins, "internlm2", tmp_path, trust_remote_code=False)
    with pytest.raises(RemoteCodeError, match="auto_map has no 'AutoModelForVision2Seq'"):
        load(standins, "internlm2", tmp_path, auto_class="AutoModelForVision2Seq")
    with pytest.raises(ValueError, match="unknown compat fix"):
        load(standins, "internlm2", tmp_path, exclude=["no_such_fix"])
    folder = fresh_copy(standins["internlm2"], tmp_path)
    shutil.copy(standins["internvl_chat"] / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(RemoteCodeError, match="no weights for 17 parameter"):
        load_remote_model(folder, family="internlm2")


def test_tied_keys_tie_when_the_checkpoint_is_tied(standins, tmp_path):
    folder = fresh_copy(standins["internlm2"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    weights = load_file(folder / "model.safetensors")
    del weights["output.weight"]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model, _ = load_remote_model(folder, family="internlm2")
    assert model.all_tied_weights_keys == {"output.weight": "model.tok_embeddings.weight"}
    assert model.output.weight is model.model.tok_embeddings.weight


def test_fixes_apply_only_where_their_precondition_is(standins, tmp_path):
    from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel

    module = types.ModuleType("geotune_clean_remote")

    class CleanLM(PreTrainedModel, GenerationMixin):  # transformers-5 style: nothing to fix
        config_class = PreTrainedConfig
        _tied_weights_keys = {"head.weight": "embed.weight"}

        def __init__(self, config):
            super().__init__(config)
            self.post_init()

        def prepare_inputs_for_generation(self, input_ids, cache=None, past_key_values=None, **kwargs):
            return {"input_ids": input_ids, "cache": cache if cache is not None else past_key_values}

    CleanLM.__module__ = module.__name__
    module.CleanLM = CleanLM
    ctx = CompatContext(path=tmp_path, modules=[module])
    assert apply_fixes(ctx, "class") == []
    model, _ = load(standins, "internlm2", tmp_path)
    assert apply_fixes(CompatContext(path=tmp_path, model=model), "model") == []  # buffers already right


def test_hard_coded_im_start_is_mapped_too(tmp_path):
    """XComposer2.5's variant also looks for 92543 (``<|im_start|>``): it must read this tokenizer's id."""
    module = types.ModuleType("geotune_ixc25_like")

    class Masker:
        def mask_human_targets(self, input_ids):
            return input_ids.masked_fill((input_ids == 92543) | (input_ids == 92542), -100)

    Masker.__module__ = module.__name__
    module.Masker = Masker
    tokenizer = tiny_tokenizer()
    ctx = CompatContext(path=tmp_path, modules=[module], tokenizer_loader=lambda: tokenizer)
    assert apply_fixes(ctx, "class") == ["hard_coded_token_ids"]
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    ids = torch.tensor([[im_start, 40, 41, im_end, 42]])
    assert Masker().mask_human_targets(ids).tolist() == [[-100, 40, 41, -100, 42]]


@pytest.mark.skipif(not _attn_mask_utils_missing(), reason="this transformers still ships modeling_attn_mask_utils")
def test_without_the_mask_utils_shim_remote_code_fails_to_import(standins, tmp_path, monkeypatch):
    import sys

    import transformers

    monkeypatch.delitem(sys.modules, "transformers.modeling_attn_mask_utils", raising=False)
    monkeypatch.delattr(transformers, "modeling_attn_mask_utils", raising=False)
    with pytest.raises(ModuleNotFoundError, match="modeling_attn_mask_utils"):
        load(standins, "internlm2", tmp_path, exclude=["removed_attn_mask_utils"], auto_class="AutoModelForCausalLM")
    _, fixes = load(standins, "internlm2", tmp_path, auto_class="AutoModelForCausalLM")
    assert fixes[0] == "removed_attn_mask_utils"
