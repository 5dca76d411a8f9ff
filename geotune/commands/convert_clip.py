"""``geotune convert-clip --checkpoint F --out DIR``: an open_clip ViT state dict (GeoRSCLIP) as a transformers
CLIP checkpoint in safetensors (``finetune/retrieval/convert.py``)."""

from __future__ import annotations

import argparse

from finetune.retrieval.convert import convert_open_clip_checkpoint, default_bpe_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="open_clip ViT state dict (.pt), e.g. RS5M_ViT-B-32_RET-2.pt")
    parser.add_argument("--out", required=True, help="folder to write (transformers CLIP, safetensors)")
    parser.add_argument("--gelu", action="store_true", help="exact GELU (LAION open_clip models); default QuickGELU "
                        "(OpenAI / GeoRSCLIP)")
    parser.add_argument("--head-width", type=int, default=64, help="attention head width (open_clip default 64)")
    parser.add_argument("--bpe", default=None, help="open_clip bpe_simple_vocab_16e6.txt.gz (default: the installed "
                        "open_clip's) for the tokenizer files")


def run(args: argparse.Namespace) -> int:
    bpe = args.bpe or default_bpe_path()
    out = convert_open_clip_checkpoint(args.checkpoint, args.out, quick_gelu=not args.gelu, head_width=args.head_width,
                                       bpe_path=bpe)
    print(f"wrote {out}" + ("" if bpe else " (no tokenizer: install open-clip-torch or pass --bpe)"))
    return 0
