"""Sampling from one frozen backbone with text only, shared by the text-to-audio and text-to-video pipelines."""

import torch

from .pipeline_av_link_base import AVLinkPipelineBase, as_prompt_list
from .windows import plan_windows


class AVLinkTextToSignalPipeline(AVLinkPipelineBase):
    """One backbone, classifier-free guidance against the negative (default empty) prompt. Users run it
    to check that the backbones under a fusion adapter are intact."""

    @torch.no_grad()
    def generate_from_text(self, prompt, negative_prompt, seconds, num_per_prompt, num_inference_steps, guidance_scale,
                           generator, latents, output_type, return_dict, callback_on_step_end,
                           callback_on_step_end_tensor_inputs, max_sequence_length):
        num_inference_steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.check_call(num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt)
        seconds = self.config.clip_seconds if seconds is None else float(seconds)
        if not seconds > 0:
            raise ValueError(f"the duration must be positive, got {seconds}")
        model = self.audio_transformer if self.generated == "audio" else self.video_transformer
        fps = self.audio_fps if self.generated == "audio" else self.video_fps
        device, dtype = self._execution_device, model.dtype
        prompts = as_prompt_list(prompt, 1 if isinstance(prompt, str) or prompt is None else len(prompt), "prompt")
        prompts = [p for p in prompts for _ in range(num_per_prompt)]
        batch = len(prompts)
        text, mask = self.encode_prompt(prompts, device, max_sequence_length)
        guided = guidance_scale != 1.0
        if guided:
            neg_text, neg_mask = self.encode_prompt(as_prompt_list(negative_prompt, batch, "negative_prompt"), device, max_sequence_length)
        frames = max(1, round(seconds * fps))
        if self.generated == "audio":
            shape = (batch, frames, model.config.in_channels)
        else:
            shape = (batch, model.config.in_channels, frames, self.config.height, self.config.width)
        latents = self.prepare_latents(shape, generator, latents, device, dtype)
        windows = plan_windows(frames, frames, fps, fps, self.config.clip_seconds, self.config.window_overlap_seconds)

        def velocity(x, t, k):
            t = t.expand(x.shape[0])
            v = model(x, t, text, mask).sample
            if not guided:
                return v
            v_uncond = model(x, t, neg_text, neg_mask).sample
            return v_uncond + guidance_scale * (v - v_uncond)

        latents = self.denoise(latents, windows, velocity, num_inference_steps, callback_on_step_end, callback_on_step_end_tensor_inputs)
        return self.make_output(latents, output_type, return_dict, num_samples=round(seconds * self.sample_rate) if self.generated == "audio" else None)
