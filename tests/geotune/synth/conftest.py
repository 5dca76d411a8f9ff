"""SynthRS trees shared by the synth tests (size tiny: a couple of seconds each)."""

from __future__ import annotations

import pytest

from geotune.synth import write_synthrs


@pytest.fixture(scope="session")
def synthrs_tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrs") / "tiny"
    write_synthrs(root, seed=0, size="tiny")
    return root


@pytest.fixture(scope="session")
def synthrs_defects(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrs") / "defects"
    write_synthrs(root, seed=0, size="tiny", published_defects=True)
    return root
