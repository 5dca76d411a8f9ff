"""Stand-in for InternLM-XComposer2-VL's remote ``modeling_internlm_xcomposer2.py`` (transformers-4.3x style).

Like the real class: ``__init__`` reads ``config.max_length`` and builds the CLIP tower (nested
``from_pretrained``); ``mask_human_targets`` hard-codes InternLM2's ids (``<|im_end|>`` 92542, eos 2);
text-only ``chat`` calls ``.cuda()``; images are 70 px (real: 490) through ``vis_processor``;
``prepare_inputs_for_generation`` takes ``im_mask`` and hands it on (``chat`` generates with it). The
Partial-LoRA arithmetic on ``im_mask`` is left out: it plays no part in these failures.
"""

import copy

import torch
from torchvision import transforms
from transformers.modeling_outputs import CausalLMOutputWithPast

from .build_mlp import build_vision_projector, build_vision_tower
from .modeling_internlm2 import InternLM2ForCausalLM


class InternLMXComposer2ForCausalLM(InternLM2ForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        self.tokenizer = None
        self.max_length = config.max_length
        print(f"Set max length to {self.max_length}")
        self.vit = build_vision_tower()
        self.vision_proj = build_vision_projector(32, config.hidden_size)
        self.vis_processor = transforms.Compose([
            transforms.Resize((70, 70), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ])

    def img2emb(self, image):
        img_embeds = self.vision_proj(self.vit(image.to(self.device)))
        atts_img = torch.ones(img_embeds.size()[:-1], dtype=torch.long).to(img_embeds.device)
        img_target = torch.ones(img_embeds.size()[:2], dtype=torch.long).to(img_embeds.device) * -100
        return img_embeds, atts_img, img_target

    def interleav_wrap(self, img_list, text_list):
        wrap_embeds_list, wrap_atts_list, wrap_target_list = [], [], []
        for image, text in zip(img_list, text_list, strict=True):
            img_embeds, atts_img, img_target = self.img2emb(image)
            parts = text[0].split("<ImageHere>")
            wrap_tokens, wrap_embeds, wrap_atts = [], [], []
            for idx, part in enumerate(parts):
                if len(part) > 0:
                    part_tokens = self.tokenizer(part, return_tensors="pt", add_special_tokens=False).to(self.device)
                    wrap_tokens.append(part_tokens.input_ids)
                    wrap_embeds.append(self.model.tok_embeddings(part_tokens.input_ids))
                    wrap_atts.append(part_tokens.attention_mask)
                if idx < img_embeds.shape[0]:
                    wrap_tokens.append(img_target[idx].unsqueeze(0))
                    wrap_embeds.append(img_embeds[idx].unsqueeze(0))
                    wrap_atts.append(atts_img[idx].unsqueeze(0))
            wrap_tokens = torch.cat(wrap_tokens, dim=1)
            wrap_target_list.append(self.mask_human_targets(wrap_tokens).to(self.device))
            wrap_embeds_list.append(torch.cat(wrap_embeds, dim=1))
            wrap_atts_list.append(torch.cat(wrap_atts, dim=1))
        return torch.cat(wrap_embeds_list), torch.cat(wrap_atts_list), torch.cat(wrap_target_list)

    def mask_human_targets(self, input_ids, pure=False):
        target_batch = []
        for bs in range(input_ids.shape[0]):
            ids = input_ids[bs]
            targets = copy.deepcopy(ids)
            end_count = 0
            last_eoa = 0
            for i, temp_id in enumerate(ids):
                if temp_id == 92542:
                    if end_count % 2 == 0:
                        targets[last_eoa:i + 6] = -100
                    else:
                        last_eoa = i + 1
                    end_count += 1
                elif temp_id == 2:
                    targets[i + 1:] = -100
                    break
            if temp_id != 2 and end_count % 2 == 0:
                targets[last_eoa + 1:] = -100
            target_batch.append(targets.unsqueeze(0))
        return torch.cat(target_batch, dim=0)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, **kwargs):
        samples = kwargs.get("samples", None)
        if samples:
            inputs_embeds, attention_mask, labels = self.interleav_wrap(samples["image"], samples["text_input"])
            inputs_embeds = inputs_embeds[:, :self.max_length]
            attention_mask = attention_mask[:, :self.max_length]
            labels = labels[:, :self.max_length]
            input_ids = None
        outputs = super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  past_key_values=past_key_values, inputs_embeds=inputs_embeds,
                                  use_cache=use_cache)
        loss = None
        if labels is not None:
            shift_logits = outputs.logits[..., :-1, :].contiguous().view(-1, self.config.vocab_size)
            loss = torch.nn.functional.cross_entropy(shift_logits, labels[..., 1:].contiguous().view(-1))
        return CausalLMOutputWithPast(loss=loss, logits=outputs.logits, past_key_values=outputs.past_key_values)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None,
                                      inputs_embeds=None, im_mask=None, **kwargs):
        if past_key_values is not None:
            past_length = past_key_values[0][0].shape[2]
            remove_prefix_length = past_length if input_ids.shape[1] > past_length else input_ids.shape[1] - 1
            input_ids = input_ids[:, remove_prefix_length:]
        position_ids = kwargs.get("position_ids", None)
        if attention_mask is not None and position_ids is None:
            position_ids = attention_mask.long().cumsum(-1) - 1
            position_ids.masked_fill_(attention_mask == 0, 1)
            if past_key_values:
                position_ids = position_ids[:, -input_ids.shape[1]:]
        if inputs_embeds is not None and past_key_values is None:
            model_inputs = {"inputs_embeds": inputs_embeds}
        else:
            model_inputs = {"input_ids": input_ids}
        model_inputs.update({"position_ids": position_ids, "past_key_values": past_key_values,
                             "use_cache": kwargs.get("use_cache"), "attention_mask": attention_mask, "im_mask": im_mask})
        return model_inputs

    @torch.no_grad()
    def chat(self, tokenizer, query, image=None, max_new_tokens=8, **kwargs):
        prompt = f"[UNUSED_TOKEN_146]user\n{query}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
        if image is None:
            inputs = tokenizer([prompt], return_tensors="pt")
            inputs = {k: v for k, v in inputs.items() if torch.is_tensor(v)}
            im_mask = torch.zeros(inputs["input_ids"].shape[:2]).cuda().bool()
            inputs = {"input_ids": inputs["input_ids"].cuda(), "attention_mask": inputs["attention_mask"].cuda()}
        else:
            raise NotImplementedError("the stand-in only chats text-only (where the real code calls .cuda())")
        del im_mask  # Partial-LoRA mask: unused by the stand-in
        outputs = self.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, **kwargs)
        return tokenizer.decode(outputs[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
