"""Image-text retrieval with CLIP-style dual encoders: HarMA adapters (seed 002), its losses, the
RSITMD/RSICD data layouts and the training loop. See docs/harma.md and ../shared/HARMA.md."""
