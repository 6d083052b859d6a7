"""Cross-modal sampling shared by V2A and A2V: the two directions differ only in which side is generated."""

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..models.joint import embed_prefix, joint_forward
from .inputs import prepare_audio, prepare_video
from .pipeline_av_link_base import AVLinkPipelineBase, as_prompt_list, take


class AVLinkCrossModalPipeline(AVLinkPipelineBase):
    """Generate one modality from the other through the Fusion Blocks (paper §3.3, "Inference").

    The conditioning input is noised once, to the fixed `conditioning_timestep`, and fed to its frozen
    backbone at every step; only that backbone's blocks up to the last fusion point run, and those
    before the first fusion point run once. Classifier-free guidance drops the conditioning modality
    and the text together: the unconditional branch is the generated modality's backbone alone with the
    negative (by default empty) prompt.
    """

    default_conditioning_timestep = 0.96
    _optional_components = ["vocoder"]
    # The joint forward interleaves both backbones and the adapter block by block, so with
    # `enable_model_cpu_offload` they stay resident together; the text encoder (T5-XXL: the largest
    # part) and the vocoder are offloaded between uses.
    _exclude_from_cpu_offload = ["audio_transformer", "video_transformer", "fusion_adapter", "audio_frontend"]
    model_cpu_offload_seq = "text_encoder->vocoder"

    def __init__(
        self,
        audio_transformer,
        video_transformer,
        fusion_adapter,
        scheduler,
        text_encoder,
        tokenizer,
        audio_frontend,
        vocoder=None,
        conditioning_timestep: float | None = None,
        num_inference_steps: int = 64,
        guidance_scale: float = 5.0,
        height: int = 36,
        width: int = 64,
        clip_seconds: float = 5.16,
        window_overlap_seconds: float | None = None,
        max_sequence_length: int = 128,
    ):
        super().__init__()
        fusion_adapter.check_backbones(audio_transformer, video_transformer)
        self.check_vocoder(audio_frontend, vocoder)
        conditioning_timestep = self.default_conditioning_timestep if conditioning_timestep is None else conditioning_timestep
        if not 0.0 <= conditioning_timestep <= 1.0:
            raise ValueError(f"conditioning_timestep must be in [0, 1], got {conditioning_timestep}")
        self.register_modules(
            audio_transformer=audio_transformer, video_transformer=video_transformer, fusion_adapter=fusion_adapter,
            scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, audio_frontend=audio_frontend, vocoder=vocoder,
        )
        self.register_sampling_config(num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds, max_sequence_length,
                                      conditioning_timestep=conditioning_timestep, height=height, width=width)

    @property
    def conditioning(self) -> str:
        return "video" if self.generated == "audio" else "audio"

    def transformer_for(self, modality: str):
        return self.audio_transformer if modality == "audio" else self.video_transformer

    def prepare_conditioning(self, inputs, rate):
        """The conditioning input in model space, its duration in seconds and the (video, audio) frame counts."""
        if self.conditioning == "video":
            video, seconds = prepare_video(inputs, rate, self.video_fps, self.config.height, self.config.width)
            return video, seconds, video.shape[2], max(1, round(seconds * self.audio_fps))
        hop = self.audio_frontend.config.hop_length
        waveform = prepare_audio(inputs, rate, self.sample_rate, hop)
        mel = self.encode_audio(waveform)
        seconds = waveform.shape[-1] / self.sample_rate
        return mel, seconds, max(1, round(seconds * self.video_fps)), mel.shape[1]

    @torch.no_grad()
    def generate(
        self,
        conditioning_input,
        conditioning_rate=None,
        prompt=None,
        conditioning_prompt=None,
        negative_prompt=None,
        num_per_prompt: int = 1,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        conditioning_timestep: float | None = None,
        generator=None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int | None = None,
    ):
        num_inference_steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        t_c = self.config.conditioning_timestep if conditioning_timestep is None else float(conditioning_timestep)
        if not 0.0 <= t_c <= 1.0:
            raise ValueError(f"conditioning_timestep must be in [0, 1], got {t_c}")
        if conditioning_input is None:
            raise ValueError(f"pass the conditioning {self.conditioning} ({self.conditioning}=...)")
        self.check_call(num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt)
        device, gen, cond = self._execution_device, self.generated, self.conditioning
        dtype = self.transformer_for(gen).dtype

        signal, seconds, num_video_frames, num_audio_frames = self.prepare_conditioning(conditioning_input, conditioning_rate)
        batch = signal.shape[0]
        prompts = as_prompt_list(prompt, batch, "prompt")
        cond_prompts = as_prompt_list(conditioning_prompt, batch, "conditioning_prompt")
        if num_per_prompt > 1:
            signal = signal.repeat_interleave(num_per_prompt, dim=0)
            prompts = [p for p in prompts for _ in range(num_per_prompt)]
            cond_prompts = [p for p in cond_prompts for _ in range(num_per_prompt)]
        batch = signal.shape[0]
        text, text_mask = self.encode_prompt(prompts, device, max_sequence_length)
        cond_text, cond_mask = self.encode_prompt(cond_prompts, device, max_sequence_length)
        guided = guidance_scale != 1.0
        if guided:
            neg_text, neg_mask = self.encode_prompt(as_prompt_list(negative_prompt, batch, "negative_prompt"), device, max_sequence_length)

        # The conditioning input is noised once, with noise from `generator`, and then held fixed.
        signal = signal.to(device=device, dtype=dtype)
        noisy_signal = self.scheduler.add_noise(signal, randn_tensor(signal.shape, generator=generator, device=device, dtype=dtype), t_c)
        if gen == "audio":
            shape = (batch, num_audio_frames, self.audio_transformer.config.in_channels)
        else:
            shape = (batch, self.video_transformer.config.in_channels, num_video_frames, self.config.height, self.config.width)
        latents = self.prepare_latents(shape, generator, latents, device, dtype)

        windows = self.windows_for(num_video_frames, num_audio_frames)
        cond_model, gen_model = self.transformer_for(cond), self.transformer_for(gen)
        # Blocks before the first fusion point see the same input at every step: run them once per window.
        prefixes = [
            embed_prefix(cond_model, self.fusion_adapter, cond, take(noisy_signal, cond, w), t_c, cond_text, cond_mask)
            for w in windows
        ]

        def velocity(x, t, k):
            t = t.expand(x.shape[0])
            inputs = {gen: x, cond: prefixes[k]}
            out = joint_forward(
                self.audio_transformer, self.video_transformer, self.fusion_adapter,
                audio=inputs["audio"], video=inputs["video"],
                audio_timestep=t if gen == "audio" else t_c, video_timestep=t if gen == "video" else t_c,
                audio_text=text if gen == "audio" else None, video_text=text if gen == "video" else None,
                audio_text_mask=text_mask if gen == "audio" else None, video_text_mask=text_mask if gen == "video" else None,
                return_audio=gen == "audio", return_video=gen == "video",
            )
            v = getattr(out, gen)
            if not guided:
                return v
            v_uncond = gen_model(x, t, neg_text, neg_mask).sample
            return v_uncond + guidance_scale * (v - v_uncond)

        latents = self.denoise(latents, windows, velocity, num_inference_steps, callback_on_step_end, callback_on_step_end_tensor_inputs)
        return self.make_output(latents, output_type, return_dict, num_samples=round(seconds * self.sample_rate))
