"""The one internal record every reader produces and every writer, selector and trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HUMAN, GPT = "human", "gpt"
IMAGE_TOKEN = "<image>"
TASKS = ("classification", "vqa", "caption", "grounding", "region", "general", "conversation")


@dataclass
class Record:
    """One training or evaluation sample.

    Attributes:
        id: unique id within its source.
        images: image paths relative to the dataset's image root (may be empty: text-only).
        conversations: ``[{"from": "human"|"gpt", "value": str}, ...]``, human first, alternating;
            ``<image>`` placeholders, one per image.
        source: dataset name.
        task: classification / vqa / caption / grounding / region / general / conversation
            (inferred by ``finetune.data.tasks.infer_task`` when absent).
        extra: format-specific fields kept for an exact round trip (e.g. InternVL ``width``/``height``,
            the original key order, unknown keys).
    """

    id: str
    images: list[str]
    conversations: list[dict[str, str]]
    source: str = ""
    task: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The first human turn (what selectors and eval read as the instruction)."""
        return next((t["value"] for t in self.conversations if t["from"] == HUMAN), "")

    @property
    def answer(self) -> str:
        """The first gpt turn."""
        return next((t["value"] for t in self.conversations if t["from"] == GPT), "")

    def text(self) -> str:
        """All turns joined, for text encoders and length estimates."""
        return "\n".join(t["value"] for t in self.conversations)
