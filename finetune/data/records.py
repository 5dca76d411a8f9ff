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
        location: ``file:line`` the record was read from ("" when it was not read from a file); never
            written out, never compared: it only lets errors found later (an image) name the line.
    """

    id: str
    images: list[str]
    conversations: list[dict[str, str]]
    source: str = ""
    task: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    location: str = field(default="", compare=False, repr=False)

    @property
    def where(self) -> str:
        """``file:line: record 'id'`` (or just the record) for error messages."""
        return f"{self.location}: record '{self.id}'" if self.location else f"record '{self.id}' ({self.source})"

    @property
    def prompt(self) -> str:
        """The first human turn (what selectors and eval read as the instruction)."""
        return next((t.get("value") for t in self.conversations if t.get("from") == HUMAN), "")

    @property
    def answer(self) -> str:
        """The first gpt turn."""
        return next((t.get("value") for t in self.conversations if t.get("from") == GPT), "")

    def text(self) -> str:
        """All turns joined, for text encoders and length estimates."""
        return "\n".join(t["value"] for t in self.conversations)
