"""Machinery shared by every av-link pipeline: prompts, noise, the windowed Euler loop, decoding, model cards.

A pipeline generates one modality ("audio": normalised log-mel frames `(B, T, n_mels)`, turned into a
waveform by the vocoder; "video": pixels `(B, 3, F, H, W)` in [-1, 1]) and may be conditioned on the
other. Subclasses only say which modality they generate and how one model call gives a velocity.
"""

import math
from typing import Callable

import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from ..loaders import AVLinkLoraLoaderMixin
from .pipeline_output import AVLinkAudioPipelineOutput, AVLinkVideoPipelineOutput
from .windows import Window, plan_windows, window_weights

AXIS = {"audio": 1, "video": 2}  # the time axis of each modality's tensor
OUTPUT_TYPES = {"audio": ("np", "pt", "latent"), "video": ("np", "pt", "pil", "latent")}


def take(x: torch.Tensor, modality: str, window: Window) -> torch.Tensor:
    """The slice of a full-length tensor that falls in `window`."""
    s = getattr(window, modality)
    return x[:, s] if modality == "audio" else x[:, :, s]


def as_prompt_list(prompt, batch_size: int, name: str) -> list[str]:
    if prompt is None:
        return [""] * batch_size
    if isinstance(prompt, str):
        return [prompt] * batch_size
    prompt = list(prompt)
    if len(prompt) == 1:
        return prompt * batch_size
    if len(prompt) != batch_size or not all(isinstance(p, str) for p in prompt):
        raise ValueError(f"{name} must be a string or a list of {batch_size} strings (one per input), got {len(prompt)} items")
    return prompt


class AVLinkPipelineBase(DiffusionPipeline, AVLinkLoraLoaderMixin):
    generated: str = "audio"  # the modality this pipeline generates
    _callback_tensor_inputs = ["latents"]

    def register_sampling_config(self, num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds,
                                 max_sequence_length, **extra):
        """Store the sampling defaults in the pipeline config (model_index.json); the overlap of long-input
        windows defaults to a quarter of the clip, at most 1 s."""
        if window_overlap_seconds is None:
            window_overlap_seconds = min(1.0, clip_seconds / 4)
        if clip_seconds <= 0 or not 0 <= window_overlap_seconds < clip_seconds:
            raise ValueError(f"need clip_seconds > 0 and 0 <= window_overlap_seconds < clip_seconds, got {clip_seconds}, {window_overlap_seconds}")
        self.register_to_config(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, clip_seconds=clip_seconds,
                                window_overlap_seconds=window_overlap_seconds, max_sequence_length=max_sequence_length, **extra)

    @staticmethod
    def check_vocoder(audio_frontend, vocoder) -> None:
        if vocoder is not None and getattr(vocoder.config, "sampling_rate", None) != audio_frontend.config.sample_rate:
            raise ValueError(f"the vocoder runs at {getattr(vocoder.config, 'sampling_rate', None)} Hz but the audio front end at "
                             f"{audio_frontend.config.sample_rate} Hz: they must match")

    # -- sizes -------------------------------------------------------------------------
    @property
    def video_fps(self) -> float:
        return float(self.video_transformer.config.frame_rate)

    @property
    def audio_fps(self) -> float:
        return float(self.audio_transformer.config.frame_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.audio_frontend.config.sample_rate)

    # -- text ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompt: list[str], device=None, max_sequence_length: int | None = None):
        """T5 (or any transformers encoder) hidden states `(B, L, text_dim)` and the token mask `(B, L)`."""
        device = device or self._execution_device
        tokens = self.tokenizer(
            prompt, padding="longest", truncation=True, return_tensors="pt",
            max_length=max_sequence_length or self.config.max_sequence_length,
        )
        mask = tokens.attention_mask.to(device)
        hidden = self.text_encoder(tokens.input_ids.to(device), attention_mask=mask).last_hidden_state
        return hidden, mask.bool()

    # -- modality conversions ---------------------------------------------------------------
    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono `(B, samples)` -> normalised log-mel `(B, frames, n_mels)`, the audio backbone's space."""
        frontend = self.audio_frontend
        return frontend.normalize(frontend(waveform.to(frontend.mel_basis.device)))

    def decode_audio(self, latents: torch.Tensor, output_type: str, num_samples: int | None = None):
        if output_type == "latent":
            return latents
        mel = self.audio_frontend.denormalize(latents.float())
        vocoder_dtype = next((p.dtype for p in self.vocoder.parameters()), torch.float32)
        waveform = self.vocoder(mel.to(vocoder_dtype)).float()
        if waveform.ndim == 1:
            waveform = waveform[None]
        if num_samples is not None:
            waveform = torch.nn.functional.pad(waveform, (0, max(0, num_samples - waveform.shape[-1])))[:, :num_samples]
        return waveform.cpu() if output_type == "pt" else waveform.cpu().numpy()

    def decode_video(self, latents: torch.Tensor, output_type: str):
        if output_type == "latent":
            return latents
        return VideoProcessor(do_resize=False).postprocess_video(latents.float().clamp(-1, 1).cpu(), output_type=output_type)

    def make_output(self, latents, output_type: str, return_dict: bool, num_samples: int | None = None):
        if self.generated == "audio":
            result = self.decode_audio(latents, output_type, num_samples)
            self.maybe_free_model_hooks()
            return AVLinkAudioPipelineOutput(audios=result, sample_rate=self.sample_rate) if return_dict else (result,)
        result = self.decode_video(latents, output_type)
        self.maybe_free_model_hooks()
        return AVLinkVideoPipelineOutput(frames=result, fps=self.video_fps) if return_dict else (result,)

    # -- checks ------------------------------------------------------------------------------
    def check_call(self, num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt):
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
        if output_type not in OUTPUT_TYPES[self.generated]:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES[self.generated]} when generating {self.generated}, got {output_type!r}")
        if self.generated == "audio" and output_type != "latent" and self.vocoder is None:
            raise ValueError("this pipeline has no vocoder: load one (or a GriffinLimVocoder), or use output_type='latent'")
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs may only name {self._callback_tensor_inputs}, got {bad}")
        if not isinstance(num_per_prompt, int) or num_per_prompt < 1:
            raise ValueError(f"the number of outputs per prompt must be a positive integer, got {num_per_prompt!r}")

    def windows_for(self, num_video_frames: int, num_audio_frames: int) -> list[Window]:
        return plan_windows(num_video_frames, num_audio_frames, self.video_fps, self.audio_fps,
                            self.config.clip_seconds, self.config.window_overlap_seconds)

    def prepare_latents(self, shape, generator, latents, device, dtype) -> torch.Tensor:
        if latents is None:
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if tuple(latents.shape) != tuple(shape):
            raise ValueError(f"latents must have shape {tuple(shape)} for this input, got {tuple(latents.shape)}")
        return latents.to(device=device, dtype=dtype)

    # -- the sampling loop ---------------------------------------------------------------------
    def denoise(
        self,
        latents: torch.Tensor,
        windows: list[Window],
        velocity: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
        num_inference_steps: int,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
    ) -> torch.Tensor:
        """Euler from t = 0 to 1. `velocity(x_window, t, k)` is window k's (guided) velocity; windows are
        blended with ramped weights so overlapping windows agree."""
        modality = self.generated
        slices = [getattr(w, modality) for w in windows]
        total = latents.shape[AXIS[modality]]
        ramp = round(self.config.window_overlap_seconds * (self.audio_fps if modality == "audio" else self.video_fps))
        shape = [1] * latents.ndim
        weights = []
        for w in window_weights(slices, total, ramp):
            shape[AXIS[modality]] = len(w)
            weights.append(w.reshape(shape).to(latents.device, torch.float32))
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        timesteps = self.scheduler.timesteps
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if len(windows) == 1:
                    v = velocity(latents, t, 0)
                else:
                    v = torch.zeros(latents.shape, device=latents.device, dtype=torch.float32)
                    norm = torch.zeros_like(v)
                    for k, window in enumerate(windows):
                        piece = take(v, modality, window)
                        piece += weights[k] * velocity(take(latents, modality, window), t, k).float()
                        take(norm, modality, window).add_(weights[k])
                    v = v / norm
                latents = self.scheduler.step(v, t, latents).prev_sample
                if callback_on_step_end is not None:
                    local = {"latents": latents}
                    outputs = callback_on_step_end(self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs})
                    latents = outputs.pop("latents", latents)
                progress_bar.update()
        return latents

    # -- model cards -----------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, model_card: bool = True, training_info: dict | None = None, **kwargs):
        """diffusers' `save_pretrained`, plus a model card `README.md` (pass `training_info` to record how the
        checkpoint was trained)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if model_card:
            from .model_card import write_model_card

            write_model_card(self, save_directory, training_info=training_info)

