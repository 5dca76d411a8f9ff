"""DeepSpeed on CPU processes (gloo) — placeholder, filled below."""

from __future__ import annotations


def prepare_environment(deepspeed_config):
    return None


def training_argument_overrides(deepspeed_config) -> dict:
    return {}
