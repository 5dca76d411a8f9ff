"""geotune's ``Trainer``: HF's, with the length-grouped sampler, adapter-driven forward and token counts."""

from __future__ import annotations

import os

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from finetune.loss import next_token_labelled, supervised_logits_loss, takes_boolean_logits_to_keep
from finetune.models.adapters.supervision import IGNORE_INDEX
from finetune.resume import has_full_weights, load_full_weights, load_token_counts, save_token_counts
from finetune.sampler import LengthGroupedSampler


class GeoTrainer(Trainer):
    """HF ``Trainer`` overriding only what it must.

    - ``_get_train_sampler``: our ``LengthGroupedSampler`` on the dataset's precomputed lengths (HF's
      would encode every sample, images included, to measure it).
    - ``compute_loss``: counts real vs padded tokens (throughput and padding share in the summary),
      and calls the adapter's ``forward_for_training`` when the family needs its own forward
      (XComposer2 builds image embeddings and ``im_mask`` itself); otherwise, with
      ``supervised_logits``, asks the model for logits at labelled positions only and scores them with
      ``finetune.loss.supervised_logits_loss`` (HF's ``compute_loss_func`` hook: same loss, same
      gradient-accumulation and multi-device scaling as the model's own).
    - ``_load_from_checkpoint``: full weights loaded under their runtime names (``finetune.resume``);
      HF's raw ``load_state_dict`` matched no key of a transformers-5 checkpoint and resumed from the
      initial weights.
    - ``train`` / ``_save_checkpoint``: token counts saved with every checkpoint and restored on resume,
      so the summary counts the whole run.
    - ``_clip_grad_norm``: clips the trainable parameters, listed once, instead of walking every module for
      ``model.parameters()`` at every step (frozen ones have no gradient: the same norm, the same clip).
    """

    def __init__(self, *args, adapter=None, length_grouped: bool = True, length_megabatch: int = 50,
                 supervised_logits: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter = adapter
        self.length_grouped = length_grouped
        self.length_megabatch = int(length_megabatch)
        self.token_counts = {"tokens": 0, "slots": 0, "samples": 0, "labelled": 0}
        self.resumed_counts = dict.fromkeys(self.token_counts, 0)  # what the checkpoint resumed from had counted
        self._params_for_flops = None
        self._trainable_params = None
        own_forward = getattr(adapter, "forward_for_training", None) is not None
        if own_forward:
            # Our forward returns a mean loss; HF would skip its grad-accum division for a model whose
            # forward takes **kwargs (it assumes a sum normalised by num_items_in_batch).
            self.model_accepts_loss_kwargs = False
        self.supervised_logits = (supervised_logits and not own_forward and self.compute_loss_func is None
                                  and self.label_smoother is None and takes_boolean_logits_to_keep(self.model))
        if self.supervised_logits:
            self.compute_loss_func = supervised_logits_loss

    def train(self, resume_from_checkpoint=None, **kwargs):
        if isinstance(resume_from_checkpoint, (str, os.PathLike)) and self.args.process_index == 0:
            self.resumed_counts = load_token_counts(resume_from_checkpoint, self.token_counts)
            self.token_counts = dict(self.resumed_counts)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if os.path.isdir(folder):
            save_token_counts(folder, self.token_counts, self.args.process_index)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = model if model is not None else self.model
        peft = hasattr(model, "peft_config")
        if not peft and not self.is_fsdp_enabled and has_full_weights(resume_from_checkpoint):
            load_full_weights(model, resume_from_checkpoint)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = getattr(dataset, "lengths", None)
        if not self.length_grouped or lengths is None:
            return super()._get_train_sampler(train_dataset)
        group = self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(lengths, group, seed=self.args.data_seed or self.args.seed,
                                    megabatch_groups=self.length_megabatch)

    def _clip_grad_norm(self, model):
        mixed_mesh = getattr(self, "_has_mixed_mesh_grads", None)  # transformers >= 5.2x: DTensor grads
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or (mixed_mesh is not None and mixed_mesh(model)):
            return super()._clip_grad_norm(model)  # the engine or the mesh owns the gradients
        if self._trainable_params is None:
            self._trainable_params = [p for p in model.parameters() if p.requires_grad]
        return self.accelerator.clip_grad_norm_(self._trainable_params, self.args.max_grad_norm)

    def floating_point_ops(self, inputs) -> int:
        """HF's count (6 x input tokens x non-embedding parameters), the parameters counted once: HF walks
        all of them again at every step, a few ms per step on a small model, and they do not change."""
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._params_for_flops is None:
            self._params_for_flops = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main].numel() * self._params_for_flops

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs.get("attention_mask")
        if mask is not None and model.training:
            self.token_counts["tokens"] += int(mask.sum())
            self.token_counts["slots"] += mask.numel()
            self.token_counts["samples"] += mask.shape[0]
            if "labels" in inputs:
                self.token_counts["labelled"] += int((inputs["labels"] != IGNORE_INDEX).sum())
        forward = getattr(self.adapter, "forward_for_training", None)
        if forward is None:
            if self.supervised_logits and model.training and "labels" in inputs:
                inputs = {**inputs, "logits_to_keep": next_token_labelled(inputs["labels"])}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = forward(model, inputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss
