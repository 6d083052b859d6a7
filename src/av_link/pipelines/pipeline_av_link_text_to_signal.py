"""Sampling from one frozen backbone with text only, shared by the text-to-audio and text-to-video pipelines."""

import torch

from .pipeline_av_link_base import TEXT_INPUTS, AVLinkPipelineBase
from .windows import plan_windows

# text-to-audio's and text-to-video's `__call__` arguments that `generate_from_text` takes under the same name
CALL_ARGUMENTS = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "generator", "latents", "output_type",
                  "return_dict", "callback_on_step_end", "callback_on_step_end_tensor_inputs", "max_sequence_length",
                  "sigmas", *TEXT_INPUTS)


class AVLinkTextToSignalPipeline(AVLinkPipelineBase):
    """One backbone, classifier-free guidance against the negative (default empty) prompt. Users run it
    to check that the backbones under a fusion adapter are intact."""

    @torch.no_grad()
    def generate_from_text(self, *, prompt, negative_prompt, seconds, num_per_prompt, num_inference_steps, guidance_scale,
                           generator, latents, output_type, return_dict, callback_on_step_end,
                           callback_on_step_end_tensor_inputs, max_sequence_length, sigmas=None, prompt_embeds=None,
                           prompt_attention_mask=None, negative_prompt_embeds=None, negative_prompt_attention_mask=None):
        num_inference_steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.check_call(num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt)
        self.start_call(guidance_scale, num_inference_steps)
        seconds = self.config.clip_seconds if seconds is None else float(seconds)
        if not seconds > 0:
            raise ValueError(f"the duration must be positive, got {seconds}")
        family = self.family(self.generated)
        model, fps = family.backbone, family.frame_rate
        device, dtype = self._execution_device, family.sampling_dtype
        text = self.encode_prompt(prompt, negative_prompt, self.do_classifier_free_guidance, num_per_prompt, prompt_embeds,
                                  prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask,
                                  max_sequence_length, device)
        state = dict(zip(TEXT_INPUTS, text))
        batch = text[0].shape[0]
        frames = family.num_frames(seconds)
        shape = family.latent_shape(batch, frames)
        windows = plan_windows(frames, frames, fps, fps, self.config.clip_seconds, self.config.window_overlap_seconds)
        state["latents"] = self.prepare_latents(shape, generator, latents, device, dtype)  # one rate: the windows end at `frames`

        def velocity(x, t, rows, state):
            inputs = self.guidance_inputs(x.to(model.dtype), t, rows, state)
            return self.guide(torch.cat([model(*batch).sample for batch in inputs]))

        tokens = (2 if self.do_classifier_free_guidance else 1) * self.num_tokens(self.generated, windows[0].length(self.generated))
        latents = self.denoise(state, windows, velocity, num_inference_steps, sigmas, callback_on_step_end,
                               callback_on_step_end_tensor_inputs, tokens_per_row=tokens)
        return self.make_output(self.decode(latents, output_type, [seconds] * batch), output_type, return_dict)
