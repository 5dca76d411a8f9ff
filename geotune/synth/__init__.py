"""SynthRS: procedurally drawn aerial-like scenes in the exact layouts of UCMerced, AID, RSVQA-LR and
GeoChat-Bench, plus a GeoChat-style instruction pool and a general pool. See docs/synthrs.md."""

from geotune.synth.build import SIZES, SynthError, write_synthrs
from geotune.synth.pool import PoolOptions

__all__ = ["SIZES", "PoolOptions", "SynthError", "write_synthrs"]
