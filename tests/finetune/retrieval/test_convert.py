"""open_clip -> transformers CLIP: a tiny open_clip model built here gives the same embeddings."""

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from transformers import AutoTokenizer, CLIPModel  # noqa: E402

from finetune.retrieval.convert import convert_open_clip_checkpoint  # noqa: E402


def _tiny_open_clip(quick_gelu=True):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = CLIP(24, CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
                 CLIPTextCfg(context_length=77, vocab_size=300, width=32, heads=1, layers=2), quick_gelu=quick_gelu)
    with torch.no_grad():  # open_clip zero-inits nothing important, but make every tensor matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_converted_model_gives_open_clips_embeddings(tmp_path, quick_gelu):
    oc = _tiny_open_clip(quick_gelu)
    torch.save({"state_dict": {f"module.{k}": v for k, v in oc.state_dict().items()}}, tmp_path / "oc.pt")
    out = convert_open_clip_checkpoint(tmp_path / "oc.pt", tmp_path / "hf", quick_gelu=quick_gelu, head_width=32)
    assert (out / "model.safetensors").is_file()
    hf = CLIPModel.from_pretrained(out).eval()
    assert hf.config.text_config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    pixels = torch.randn(3, 3, 32, 32)
    ids = torch.zeros(3, 77, dtype=torch.long)  # open_clip pads with 0; end-of-text is the highest id
    for row, length in enumerate((5, 12, 1)):
        ids[row, 0] = 298
        ids[row, 1:length + 1] = torch.randint(1, 297, (length,))
        ids[row, length + 1] = 299
    with torch.no_grad():
        ref_img, ref_txt = oc.encode_image(pixels), oc.encode_text(ids)
        img = hf.get_image_features(pixel_values=pixels).pooler_output
        txt = hf.get_text_features(input_ids=ids).pooler_output
    torch.testing.assert_close(img, ref_img, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(txt, ref_txt, atol=1e-5, rtol=1e-5)


def test_tokenizer_matches_open_clips(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from finetune.retrieval.convert import write_clip_tokenizer

    write_clip_tokenizer(tmp_path, default_bpe())
    ours = AutoTokenizer.from_pretrained(tmp_path)
    text = "many green trees are around the two white storage tanks"
    theirs = SimpleTokenizer()
    sot, eot = theirs.all_special_ids
    assert ours(text)["input_ids"] == [sot, *theirs.encode(text), eot] and (sot, eot) == (49406, 49407)
    assert ours.pad_token_id == 0


def test_not_an_open_clip_file_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an open_clip ViT state dict"):
        convert_open_clip_checkpoint(tmp_path / "x.pt", tmp_path / "out")
