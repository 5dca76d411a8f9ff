"""Training-side token plumbing shared by the adapters: chat layouts, label masks, truncation.

A conversation becomes a list of *pieces*: text (tokenised on its own, with no special tokens added)
or a fixed id span (an image: ``<img>`` + N x ``<IMG_CONTEXT>`` + ``</img>``). Each piece says whether
it is supervised. Only the assistant's answer and the token that ends its turn carry labels; every
other position is ``IGNORE_INDEX``. Pieces are split at special tokens, so tokenising them one by one
gives the same ids as tokenising the whole string, and the label mask is exact by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from finetune.data.records import GPT, HUMAN, IMAGE_TOKEN

IGNORE_INDEX = -100


class SkipSample(Exception):
    """A record that cannot become a training sample; ``reason`` is the key it is counted under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ChatFormat:
    """How one family lays out a conversation (``{}`` is the turn's text).

    Attributes:
        user: a whole user turn, e.g. ``"<|im_start|>user\\n{}<|im_end|>\\n"``.
        assistant_prefix: what opens the assistant's turn (not supervised).
        assistant_end: what closes the answer (supervised: the model must learn to stop).
        separator: what follows ``assistant_end`` before the next turn (not supervised).
        system: the system turn (``{}`` = message); used only when a system message is given.
        bos: prepend the tokenizer's BOS token (InternLM2 tokenizers expect ``<s>``).
    """

    user: str
    assistant_prefix: str
    assistant_end: str
    separator: str
    system: str = ""
    bos: bool = False


HERMES2 = ChatFormat(
    user="<|im_start|>user\n{}<|im_end|>\n",
    assistant_prefix="<|im_start|>assistant\n",
    assistant_end="<|im_end|>",
    separator="\n",
    system="<|im_start|>system\n{}<|im_end|>\n",
)
INTERNLM2_CHAT = replace(HERMES2, bos=True)  # the same layout after InternLM2's <s>
PHI3_CHAT = ChatFormat(
    user="<|user|>\n{}<|end|>\n",
    assistant_prefix="<|assistant|>\n",
    assistant_end="<|end|>",
    separator="\n",
    system="<|system|>\n{}<|end|>\n",
)
XCOMPOSER2 = ChatFormat(
    user="[UNUSED_TOKEN_146]user\n{}[UNUSED_TOKEN_145]\n",
    assistant_prefix="[UNUSED_TOKEN_146]assistant\n",
    assistant_end="[UNUSED_TOKEN_145]",
    separator="\n",
    system="[UNUSED_TOKEN_146]system\n{}[UNUSED_TOKEN_145]\n",
    bos=True,
)


def format_special_tokens(fmt: ChatFormat) -> list[str]:
    """The special tokens a layout's turn strings use (``<|im_start|>``, ``[UNUSED_TOKEN_145]``...), in order."""
    text = fmt.system + fmt.user + fmt.assistant_prefix + fmt.assistant_end + fmt.separator
    return list(dict.fromkeys(re.findall(r"<\|[^|<>]+\|>|\[UNUSED_TOKEN_\d+\]", text)))


@dataclass
class Piece:
    """Text to tokenise, or fixed ids (``atomic``: an image span that must never be cut).

    ``unsupervised_prefix``: the start of ``text`` that a supervised piece does not supervise (the
    assistant's opening). The turn is tokenised whole and as many tokens as the prefix alone gives are
    masked, as InternVL's ``preprocess_*`` do: tokenised apart, a sentencepiece tokenizer would put a
    "▁" before the answer that the whole turn does not have.
    """

    text: str = ""
    ids: list[int] | None = None
    supervised: bool = False
    atomic: bool = False
    unsupervised_prefix: str = ""


def conversation_turns(record) -> list[tuple[str, str]]:
    """``(role, text)`` pairs, human/gpt alternating, with one ``<image>`` per image.

    A record with images and no placeholder gets them in front of its first human turn (LLaVA's
    convention); any other mismatch between placeholders and images is a ``SkipSample``.
    """
    turns = [(t["from"], t["value"]) for t in record.conversations]
    if not turns or turns[0][0] != HUMAN or not any(role == GPT for role, _ in turns):
        raise SkipSample("no_assistant_turn", f"record {record.id}: needs a human turn followed by a gpt turn")
    placeholders = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if placeholders == 0 and record.images:
        turns[0] = (HUMAN, f"{IMAGE_TOKEN}\n" * len(record.images) + turns[0][1])
    elif placeholders != len(record.images):
        raise SkipSample(
            "image_placeholder_mismatch",
            f"record {record.id}: {placeholders} <image> placeholders for {len(record.images)} images",
        )
    return turns


def conversation_pieces(
    turns: Sequence[tuple[str, str]],
    fmt: ChatFormat,
    image_spans: Sequence[list[int]],
    system_message: str | None = None,
    image_marker: str = IMAGE_TOKEN,
) -> list[Piece]:
    """Lay out a conversation as pieces; ``image_spans[i]`` replaces the i-th ``image_marker``."""
    pieces: list[Piece] = []
    if system_message:
        pieces.append(Piece(fmt.system.format(system_message)))
    spans = iter(image_spans)
    for role, text in turns:
        if role == HUMAN:
            before, after = fmt.user.split("{}")
            parts = text.split(image_marker)
            pieces.append(Piece(before + parts[0]))
            for part in parts[1:]:
                pieces.append(Piece(ids=list(next(spans)), atomic=True))
                pieces.append(Piece(part))
            pieces.append(Piece(after))
        else:
            pieces.append(Piece(fmt.assistant_prefix + text + fmt.assistant_end, supervised=True,
                                unsupervised_prefix=fmt.assistant_prefix))
            pieces.append(Piece(fmt.separator))
    return pieces


def tokenize_pieces(
    tokenizer: Callable, pieces: Sequence[Piece], max_length: int, too_long: str = "truncate", bos_id: int | None = None
) -> tuple[list[int], list[int], bool]:
    """Token ids and labels for ``pieces``, cut to ``max_length``.

    Args:
        tokenizer: a HF tokenizer (called with ``add_special_tokens=False``).
        pieces: from ``conversation_pieces``.
        max_length: most tokens kept.
        too_long: ``truncate`` drops text tokens past ``max_length`` (never inside or before an image
            span's end); ``drop`` refuses any over-long sample.
        bos_id: prepended when not None.

    Returns:
        ``(input_ids, labels, truncated)``.

    Raises:
        SkipSample: ``too_long`` (drop policy), ``image_span_over_max_length`` (the cut would fall in
            or before an image span), ``no_answer_within_max_length`` (nothing supervised remains).
    """
    ids: list[int] = [] if bos_id is None else [bos_id]
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    atomic_end = 0
    # One batched call for all text pieces: per-call overhead, not tokenizing, dominated a short sample.
    texts = [text for piece in pieces if piece.ids is None
             for text in ([piece.text, piece.unsupervised_prefix] if piece.unsupervised_prefix else [piece.text])]
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    for piece in pieces:
        chunk = piece.ids if piece.ids is not None else next(encoded)
        masked = len(next(encoded)) if piece.unsupervised_prefix else 0
        ids.extend(chunk)
        labels.extend([IGNORE_INDEX] * masked + chunk[masked:] if piece.supervised else [IGNORE_INDEX] * len(chunk))
        if piece.atomic:
            atomic_end = len(ids)
    truncated = len(ids) > max_length
    if truncated:
        if too_long == "drop":
            raise SkipSample("too_long", f"{len(ids)} tokens > max_length {max_length}")
        if atomic_end > max_length:
            raise SkipSample("image_span_over_max_length", f"image tokens end at {atomic_end} > max_length {max_length}")
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise SkipSample("no_answer_within_max_length", f"no answer token within max_length {max_length}")
    return ids, labels, truncated


def image_span(start_id: int, context_id: int, end_id: int, n_tokens: int) -> list[int]:
    """``<img>`` + ``n_tokens`` x ``<IMG_CONTEXT>`` + ``</img>`` as ids."""
    return [start_id] + [context_id] * n_tokens + [end_id]


def image_sizes(images) -> list[tuple[int, int]]:
    """``(width, height)`` of PIL images or of ``(w, h)`` tuples (the length pass passes sizes only)."""
    return [tuple(im) if isinstance(im, (tuple, list)) else im.size for im in images]


def has_pixels(images) -> bool:
    return bool(images) and not isinstance(images[0], (tuple, list))
