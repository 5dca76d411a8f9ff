"""Fixtures for the app's tests: runs train tiny models, as the training tests do."""

from __future__ import annotations

from torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)
