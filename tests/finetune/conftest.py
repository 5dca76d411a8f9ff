"""Fixtures for training tests (the colour set and stand-in checkpoints are in tests/conftest.py: the app's
tests use them too)."""

from __future__ import annotations

from torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)
