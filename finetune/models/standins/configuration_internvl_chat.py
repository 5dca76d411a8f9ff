"""Stand-in ``InternVLChatConfig`` (written for geotune; mirrors OpenGVLab's public interface).

Copied into a checkpoint folder with ``auto_map``, so it loads with ``trust_remote_code=True``.
"""

from transformers import AutoConfig, PretrainedConfig

from .configuration_internlm2 import InternLM2Config


class InternVisionConfig(PretrainedConfig):
    model_type = "intern_vit_6b"

    def __init__(self, num_channels=3, patch_size=14, image_size=448, hidden_size=1024, num_hidden_layers=24,
                 num_attention_heads=16, intermediate_size=4096, layer_norm_eps=1e-6, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_channels, self.patch_size, self.image_size = num_channels, patch_size, image_size
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = hidden_size, num_hidden_layers, num_attention_heads
        self.intermediate_size, self.layer_norm_eps, self.initializer_range = intermediate_size, layer_norm_eps, initializer_range


class InternVLChatConfig(PretrainedConfig):
    model_type = "internvl_chat"
    is_composition = True

    def __init__(self, vision_config=None, llm_config=None, use_backbone_lora=0, use_llm_lora=0, select_layer=-1,
                 force_image_size=None, downsample_ratio=0.5, template=None, dynamic_image_size=False,
                 use_thumbnail=False, ps_version="v2", min_dynamic_patch=1, max_dynamic_patch=6, **kwargs):
        super().__init__(**kwargs)
        vision_config = vision_config or {}
        llm_config = dict(llm_config or {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
        self.vision_config = InternVisionConfig(**vision_config) if isinstance(vision_config, dict) else vision_config
        if isinstance(llm_config, dict) and llm_config.get("architectures", [None])[0] == "InternLM2ForCausalLM":
            # InternLM2 is remote code too: its config class ships beside this file, as in the original.
            llm_config.pop("model_type", None)
            llm_config = InternLM2Config(**llm_config)
        elif isinstance(llm_config, dict):
            model_type = llm_config.pop("model_type", "qwen2")
            llm_config = AutoConfig.for_model(model_type, **llm_config)
        self.llm_config = llm_config
        self.use_backbone_lora, self.use_llm_lora, self.select_layer = use_backbone_lora, use_llm_lora, select_layer
        self.force_image_size, self.downsample_ratio, self.template = force_image_size, downsample_ratio, template
        self.dynamic_image_size, self.use_thumbnail, self.ps_version = dynamic_image_size, use_thumbnail, ps_version
        self.min_dynamic_patch, self.max_dynamic_patch = min_dynamic_patch, max_dynamic_patch

    def to_dict(self):
        output = super().to_dict()
        output["vision_config"] = self.vision_config.to_dict()
        output["llm_config"] = self.llm_config.to_dict()
        return output
