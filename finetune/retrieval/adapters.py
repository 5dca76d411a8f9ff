"""HarMA's adapters (arXiv 2404.18253), written for ``transformers.CLIPModel``.

Every encoder layer's MLP of both towers becomes ``GatedMLP``::

    y = MLP(LN2(x));  beta = sigmoid(block_gate)
    out = beta * A(y) + (1 - beta) * y,   A(y) = y + Delta(y)

``Delta`` is ``GatedAdapter``: down-projection to ``r`` + GELU, a multi-head self-attention applied
twice (the shared ``SharedAdapter`` in between when there is one), a sigmoid-gated mix with the
down-projection, and a zero-initialised up-projection, so the model equals the backbone at step 0.
The public code (seekerhuang/HarMA) gives the shared adapter of depth ``l`` to the text tower only;
the paper shares it across both towers: ``share = text_only | both | none``. HF's encoder layer adds
the residual after its MLP, so replacing ``layer.mlp`` is exact. Constants: HARMA.md section 1.

``sites`` says which sublayer outputs get an adapter: ``("mlp",)`` is HarMA. ``("mlp", "attn")`` also
wraps each layer's self-attention output in ``GatedAttention`` (the same adapter, gate and shared module
rule): an ablation of ours, NOT HarMA as published.
"""

from __future__ import annotations

import torch
from torch import nn

from finetune.config import HARMA_SITES, harma_sites_problem

SHARE_MODES = ("text_only", "both", "none")
# HarMA adapts the MLP output only; "attn" is our ablation (not in the paper or code). The recipe check owns the list.
SITES = HARMA_SITES
GATE_INIT = 0.6  # every gate is a raw scalar through a sigmoid (0.646 at init), as in the public code


def _gate() -> nn.Parameter:
    return nn.Parameter(torch.tensor(GATE_INIT))


def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class SharedAdapter(nn.Module):
    """The mini adapter in the bottleneck space (paper: MMS-Adapter; code: BiShareAdapter).

    ``S(h) = h + W2(g * MHA(u) + (1 - g) * u),  u = W1 h``, with ``W2`` zero-initialised.
    """

    def __init__(self, dim: int = 128, heads: int = 8):
        super().__init__()
        half = dim // 2
        self.down = nn.Linear(dim, half)
        self.attn = nn.MultiheadAttention(half, heads, batch_first=True)  # [B, L, D] (HF layout)
        self.gate = _gate()
        self.up = _zero_linear(half, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = self.down(h)  # the public code computes a GELU here but never uses it
        a = self.attn(u, u, u, need_weights=False)[0]
        g = torch.sigmoid(self.gate)
        return h + self.up(g * a + (1 - g) * u)


class GatedAdapter(nn.Module):
    """The per-layer adapter (paper: MultiModal Gated Adapter; code: MMadapter); returns ``Delta(y)``."""

    def __init__(self, dim: int, bottleneck: int = 128, heads: int = 8, shared: SharedAdapter | None = None):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.attn = nn.MultiheadAttention(bottleneck, heads, batch_first=True)
        self.gate = _gate()
        self.up = _zero_linear(bottleneck, dim)
        self.shared = shared  # the same module object as in HarmaAdapters.shared (parameters counted once)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h0 = self.act(self.down(y))
        # No attention mask, as in the public code: padded text positions take part (HARMA.md section 7).
        h = self.attn(h0, h0, h0, need_weights=False)[0]
        if self.shared is not None:
            h = self.shared(h)
        h = self.attn(h, h, h, need_weights=False)[0]  # the same attention a second time
        a = torch.sigmoid(self.gate)
        return self.up(a * h0 + (1 - a) * h)


class GatedMLP(nn.Module):
    """``beta * (y + Delta(y)) + (1 - beta) * y`` around a frozen CLIP MLP; ``beta = sigmoid(block_gate)``."""

    def __init__(self, mlp: nn.Module, adapter: GatedAdapter):
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter
        self.block_gate = _gate()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        y = self.mlp(hidden_states)
        # beta * (y + D) + (1 - beta) * y, written as y + beta * D: the same function, and exactly y
        # (bit for bit) while D is zero, i.e. at init.
        return y + torch.sigmoid(self.block_gate) * self.adapter(y)


class GatedAttention(nn.Module):
    """``o + beta * Delta(o)`` around a frozen CLIP self-attention, ``o`` its output; the attention weights
    pass through. Not part of HarMA: the ablation ``sites: [mlp, attn]``. Exactly ``o`` at init."""

    def __init__(self, attn: nn.Module, adapter: GatedAdapter):
        super().__init__()
        self.attn = attn
        self.adapter = adapter
        self.block_gate = _gate()

    def forward(self, *args, **kwargs):
        out, weights = self.attn(*args, **kwargs)
        return out + torch.sigmoid(self.block_gate) * self.adapter(out), weights


def encoder_layers(clip: nn.Module) -> dict[str, nn.ModuleList]:
    """The two towers' encoder layers of a CLIP-family model (``{vision,text}_model.encoder.layers``)."""
    towers = {}
    for tower in ("vision", "text"):
        module = getattr(clip, f"{tower}_model", None)
        layers = getattr(getattr(module, "encoder", None), "layers", None)
        if layers is None or not all(hasattr(layer, "mlp") for layer in layers):
            raise ValueError(f"{type(clip).__name__} has no {tower}_model.encoder.layers[*].mlp; HarMA needs a "
                             "CLIP-family dual encoder (transformers CLIPModel or one laid out like it)")
        towers[tower] = layers
    return towers


class HarmaAdapters(nn.Module):
    """Injects the adapters into ``clip`` (in place) and owns the shared adapters.

    Args:
        clip: a ``CLIPModel``-like dual encoder; its layers' ``mlp`` are wrapped.
        share: ``text_only`` (public code), ``both`` (paper) or ``none``.
        bottleneck: adapter width ``r`` (128); heads: adapter attention heads (8).
        sites: sublayer outputs that get an adapter, of ``SITES``: ``("mlp",)`` (HarMA) or also ``"attn"``
            (each layer's self-attention output; an ablation, not HarMA). A tower that shares gives both
            of a layer's adapters that depth's shared module.
    """

    def __init__(self, clip: nn.Module, share: str = "text_only", bottleneck: int = 128, heads: int = 8,
                 sites: tuple[str, ...] = ("mlp",)):
        super().__init__()
        if share not in SHARE_MODES:
            raise ValueError(f"harma.share: '{share}' is not one of {', '.join(SHARE_MODES)}")
        sites = tuple(sites)
        if problem := harma_sites_problem(sites):
            raise ValueError(problem)
        towers = encoder_layers(clip)
        depth = len(towers["text"])
        if share == "both" and len(towers["vision"]) != depth:
            raise ValueError(f"harma.share=both needs towers of equal depth (vision {len(towers['vision'])}, "
                             f"text {depth}); use text_only or none")
        self.share = share
        self.sites = sites
        self.shared = nn.ModuleList(SharedAdapter(bottleneck, heads) for _ in range(depth)) if share != "none" else None
        for tower, layers in towers.items():
            uses_shared = share == "both" or (share == "text_only" and tower == "text")
            for index, layer in enumerate(layers):
                if isinstance(layer.mlp, GatedMLP) or isinstance(getattr(layer, "self_attn", None), GatedAttention):
                    raise ValueError("the model already carries HarMA adapters")
                dim = layer.mlp.fc2.out_features if hasattr(layer.mlp, "fc2") else _width(layer)
                shared = self.shared[index] if uses_shared else None
                if "mlp" in sites:
                    layer.mlp = GatedMLP(layer.mlp, GatedAdapter(dim, bottleneck, heads, shared))
                if "attn" in sites:
                    if not hasattr(layer, "self_attn"):
                        raise ValueError(f"harma.sites: {type(layer).__name__} has no self_attn to wrap; use [mlp]")
                    layer.self_attn = GatedAttention(layer.self_attn, GatedAdapter(dim, bottleneck, heads, shared))


def _width(layer: nn.Module) -> int:
    for name in ("embed_dim", "hidden_size"):
        if hasattr(layer, name):
            return int(getattr(layer, name))
    raise ValueError(f"cannot tell the width of {type(layer).__name__}; give its MLP an fc2 Linear")


def harma_parameter(name: str) -> bool:
    """Names HarMA trains (the public code's rule: adapters, every gate, the temperature)."""
    return ".adapter." in name or name.startswith("shared.") or ".shared." in name or "gate" in name or name == "temp"


def adapter_count_formula(dim: int, r: int = 128) -> int:
    """Parameters of one ``GatedAdapter`` of width ``dim`` (HARMA.md section 7, test 4)."""
    return dim * r + r + r * dim + dim + (3 * r * r + 3 * r) + (r * r + r) + 1


def shared_count_formula(r: int = 128) -> int:
    """Parameters of one ``SharedAdapter`` on bottleneck ``r`` (33,217 for r = 128)."""
    h = r // 2
    return r * h + h + h * r + r + 3 * h * h + 3 * h + h * h + h + 1
