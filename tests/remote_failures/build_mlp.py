"""Stand-in for InternLM-XComposer2's remote ``build_mlp.py`` (transformers-4.3x style, tiny sizes).

Like the real file: ``__init__`` downloads CLIP by Hub name with a nested ``from_pretrained``, reaches its
layers through ``.vision_model``, and enlarges the position table (real: 24x24 -> 35x35 patches, 336 ->
490 px; here 4x4 -> 5x5, 56 -> 70 px) without touching ``config.image_size``.
"""

import torch
from torch import nn
from transformers import CLIPVisionModel


def build_vision_tower():
    vision_tower = "openai/clip-vit-large-patch14-336"
    return CLIPVisionTower(vision_tower)


def build_vision_projector(vision_hidden=32, llm_hidden=32):
    return nn.Sequential(nn.Linear(vision_hidden, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden))


class CLIPVisionTower(nn.Module):
    def __init__(self, vision_tower):
        super().__init__()
        self.vision_tower_name = vision_tower
        self.select_layer = -1
        self.load_model()
        self.resize_pos()

    def load_model(self):
        self.vision_tower = CLIPVisionModel.from_pretrained(self.vision_tower_name)
        self.vision_tower.requires_grad_(False)

    def resize_pos(self):
        pos_embed_checkpoint = self.vision_tower.vision_model.embeddings.position_embedding.weight
        pos_embed_checkpoint = pos_embed_checkpoint.unsqueeze(0)
        orig_size, new_size = 4, 5
        embedding_size = pos_embed_checkpoint.shape[-1]
        new_num = new_size**2 + 1
        extra_tokens = pos_embed_checkpoint[:, :1]
        pos_tokens = pos_embed_checkpoint[:, 1:]
        pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
        pos_tokens = torch.nn.functional.interpolate(pos_tokens, size=(new_size, new_size), mode="bicubic",
                                                     align_corners=False)
        pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
        new_pos_embed = torch.cat((extra_tokens, pos_tokens), dim=1).squeeze(0)
        self.vision_tower.vision_model.embeddings.position_embedding = torch.nn.Embedding(new_num, embedding_size)
        self.vision_tower.vision_model.embeddings.position_embedding.weight = torch.nn.Parameter(
            new_pos_embed.to(pos_embed_checkpoint.dtype))
        self.vision_tower.vision_model.embeddings.position_ids = torch.arange(new_num).expand((1, -1))

    def forward(self, images):
        outs = self.vision_tower(images.to(device=self.device, dtype=self.dtype), output_hidden_states=True)
        return outs.hidden_states[self.select_layer][:, 1:].to(images.dtype)

    @property
    def dtype(self):
        return self.vision_tower.dtype

    @property
    def device(self):
        return self.vision_tower.device
