"""Stand-in for InternViT's remote ``modeling_intern_vit.py`` header: it imports timm unconditionally."""

from timm.models.layers import DropPath
from torch import nn
from transformers.modeling_utils import PreTrainedModel

from .configuration_internvl_chat import InternVisionConfig


class InternVisionModel(PreTrainedModel):
    config_class = InternVisionConfig

    def __init__(self, config):
        super().__init__(config)
        self.patch_embedding = nn.Conv2d(3, config.hidden_size, config.patch_size, config.patch_size)
        self.drop_path = DropPath(0.0)
        self.post_init()
