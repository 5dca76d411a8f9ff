"""geotune: fine-tune multimodal LLMs on remote-sensing data, with the right data."""

__version__ = "0.1.0"
