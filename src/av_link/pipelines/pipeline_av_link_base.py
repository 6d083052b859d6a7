"""Machinery shared by every av-link pipeline: prompts, noise, the windowed sampling loop, decoding, saving.

A pipeline generates one modality (audio or video) and may be conditioned on the other. What each modality's
backbone works on (normalised mel and pixels for av-link's own backbones, VAE latents for diffusers' Wan and
LongCat), how its text is encoded and how its signal is decoded is its family's (:mod:`.families`), chosen from the
class of its transformer. Subclasses only say which modality they generate and how one model call gives a velocity.

The sampling loop follows diffusers' pipelines (`pipeline_wan.py`): any flow scheduler in diffusers'
sigma convention steps it, callbacks see the tensors in `_callback_tensor_inputs` and may replace them,
and `guidance_scale`, `do_classifier_free_guidance`, `num_timesteps`, `current_timestep` and `interrupt`
are read at every step (so diffusers' stock callbacks, e.g. `SDCFGCutoffCallback`, work).
"""

import inspect
import math
from typing import Callable

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor

from ..loaders import AVLinkLoraLoaderMixin
from ..schedulers.flow_time import precise_timestep, scheduler_output, time_from_timestep
from ..schedulers.scheduling_flow_match_euler import paper_sigmas
from . import folders
from .families import family_for
from .pipeline_output import AVLinkAudioPipelineOutput, AVLinkVideoPipelineOutput
from .windows import Window, batch_rows, plan_windows, window_weights

TEXT_INPUTS = ("prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds", "negative_prompt_attention_mask")
AXIS = {"audio": 1, "video": 2}  # the time axis of each modality's tensor
OUTPUT_TYPES = {"audio": ("np", "pt", "latent"), "video": ("np", "pt", "pil", "latent")}
# Tokens one forward pass may hold (summed over its rows and the backbones they run through): peak activation
# memory grows with it (about tokens x MLP width x bytes per value for the largest intermediate; at paper scale
# 2**17 tokens is ~1 GB in bf16). 2**17 batches ~7 windows per V2A pass and ~3 per A2V pass at paper scale.
DEFAULT_MAX_BATCH_TOKENS = 2**17
# On a CPU, small passes are as fast (they stay in cache) and keep memory flat in the input's length: with the tiny
# SynthHits V2A model, 2**13 tokens ran a 55 s input in 145 s / 883 MB against 160 s / 970 MB with 2**17 (one
# thread), and 2**12 samples as fast as 2**13 (2 threads) while a 5-minute input's sampling peaks ~25 MB lower.
CPU_MAX_BATCH_TOKENS = 2**12


def batch_token_budget(max_batch_tokens: int | None, device: torch.device) -> int:
    """The tokens of one batched pass: the configured number, or by default (None) one for the device's kind."""
    if max_batch_tokens is not None:
        return max_batch_tokens
    return CPU_MAX_BATCH_TOKENS if torch.device(device).type == "cpu" else DEFAULT_MAX_BATCH_TOKENS


def take(x: torch.Tensor, modality: str, window: Window) -> torch.Tensor:
    """The slice of a full-length tensor that falls in `window`."""
    s = getattr(window, modality)
    return x[:, s] if modality == "audio" else x[:, :, s]


def shared_text_batch(pairs: list, padding_neutral: bool):
    """`(text, mask)` with the `(embeds, mask)` pairs' rows stacked in one batch (their texts padded to one length
    with masked-out tokens; mask None where nothing is masked), or None when the texts differ in length and padding
    would change the backbone's output (its family's `text_padding_neutral`): then each pair is a batch of its own."""
    length = max(embeds.shape[1] for embeds, _ in pairs)
    if all(mask is None and embeds.shape[1] == length for embeds, mask in pairs):
        return torch.cat([e for e, _ in pairs]), None
    if any(e.shape[1] != length for e, _ in pairs) and not padding_neutral:
        return None
    masks = [torch.ones(e.shape[:2], dtype=torch.bool, device=e.device) if m is None else m for e, m in pairs]
    text = torch.cat([torch.nn.functional.pad(e, (0, 0, 0, length - e.shape[1])) for e, _ in pairs])
    return text, torch.cat([torch.nn.functional.pad(m, (0, length - m.shape[1]), value=False) for m in masks])


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


def passed_on(arguments: dict, names) -> dict:
    """The `__call__` arguments (its `locals()`) that go on to the shared sampler under the same names."""
    return {name: arguments[name] for name in names}


def set_scheduler_timesteps(scheduler, num_inference_steps: int, sigmas, device) -> torch.Tensor:
    """The paper's uniform grid (or `sigmas`) for schedulers that take sigmas, the scheduler's own grid otherwise."""
    if "sigmas" in inspect.signature(scheduler.set_timesteps).parameters:
        sigmas = paper_sigmas(num_inference_steps) if sigmas is None else sigmas
        scheduler.set_timesteps(sigmas=sigmas, device=device)
    elif sigmas is not None:
        raise ValueError(f"{type(scheduler).__name__} does not take custom sigmas")
    else:
        scheduler.set_timesteps(num_inference_steps, device=device)
    return scheduler.timesteps


def check_guidance_span(guidance_start: float, guidance_stop: float) -> None:
    """The guided span of the steps, as fractions (diffusers' `ClassifierFreeGuidance(start, stop)`)."""
    if not 0.0 <= guidance_start <= guidance_stop <= 1.0:
        raise ValueError(f"need 0 <= guidance_start <= guidance_stop <= 1, got {guidance_start}, {guidance_stop}")


def guided_steps(guidance_start: float, guidance_stop: float, num_steps: int) -> tuple[int, int]:
    """The guided steps as diffusers' guiders count them: `first <= step < stop`."""
    return int(guidance_start * num_steps), int(guidance_stop * num_steps)


class AVLinkPipelineBase(DiffusionPipeline, AVLinkLoraLoaderMixin):
    generated: str = "audio"  # the modality this pipeline generates
    _callback_tensor_inputs = ["latents", *TEXT_INPUTS]

    def register_sampling_config(self, num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds,
                                 max_sequence_length, max_batch_tokens=None, **extra):
        """Store the sampling defaults in the pipeline config (model_index.json); the overlap of long-input
        windows defaults to a quarter of the clip, at most 1 s. `max_batch_tokens` bounds one batched forward
        pass of windows and guidance branches; None (the default) picks it per device (`batch_token_budget`); a
        pass holds at least one row."""
        if max_batch_tokens is not None and (not isinstance(max_batch_tokens, int) or max_batch_tokens < 1):
            raise ValueError(f"max_batch_tokens must be a positive integer or None, got {max_batch_tokens!r}")
        if window_overlap_seconds is None:
            window_overlap_seconds = min(1.0, clip_seconds / 4)
        if clip_seconds <= 0 or not 0 <= window_overlap_seconds < clip_seconds:
            raise ValueError(f"need clip_seconds > 0 and 0 <= window_overlap_seconds < clip_seconds, got {clip_seconds}, {window_overlap_seconds}")
        self.register_to_config(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, clip_seconds=clip_seconds,
                                window_overlap_seconds=window_overlap_seconds, max_sequence_length=max_sequence_length,
                                max_batch_tokens=max_batch_tokens, **extra)

    def default_sigmas(self, num_inference_steps: int, sigmas):
        """`sigmas` if given, else the grid stored in the config (a distilled student's, see
        :mod:`av_link.training.distillation`) when `num_inference_steps` is that grid's length, else None (the paper's)."""
        grid = self.config.get("sigmas")
        if sigmas is None and grid and len(grid) == num_inference_steps:
            return list(grid)
        return sigmas

    def check_components(self, modalities) -> None:
        """One ValueError naming every component that does not fit the backbones of `modalities` (missing ones,
        mismatched ones)."""
        problems = []
        for modality in modalities:
            try:
                problems += self.family(modality).problems()
            except ValueError as error:  # a transformer of no family, or of the other modality's
                problems.append(str(error))
        if problems:
            raise ValueError(f"{type(self).__name__}: the components do not fit together:\n- " + "\n- ".join(problems))

    # -- diffusers' call-state properties ----------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether the current step is guided (before sampling: whether any step is). diffusers' convention: a scale
        of 1 or less is no guidance (and a callback may set 0 to stop it); `guidance_start` / `guidance_stop` limit
        it to a span of the steps, as diffusers' `ClassifierFreeGuidance(start, stop)` does: steps outside run
        the conditional branch alone (the unconditional one is not computed)."""
        if self._guidance_scale <= 1.0:
            return False
        first, stop = self._guided_steps
        step = getattr(self, "_step_index", None)
        return first < stop if step is None else first <= step < stop

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def current_timestep(self):
        return getattr(self, "_current_timestep", None)

    @property
    def interrupt(self) -> bool:
        return getattr(self, "_interrupt", False)

    # -- sizes -------------------------------------------------------------------------
    def family(self, modality: str):
        """`modality`'s backbone family (codec, text, backbone view), read from the current components."""
        return family_for(self, modality)

    def frame_rate(self, modality: str) -> float:
        """Frames per second of `modality`'s model space (mel frames, pixel frames or latent frames)."""
        return self.family(modality).frame_rate

    @property
    def video_fps(self) -> float:
        """Frames per second of the videos the pipeline takes and makes."""
        return self.family("video").fps

    @property
    def audio_fps(self) -> float:
        """Frames per second of the audio backbone's space."""
        return self.frame_rate("audio")

    @property
    def sample_rate(self) -> int:
        return self.family("audio").sample_rate

    def transformer_for(self, modality: str):
        return self.audio_transformer if modality == "audio" else self.video_transformer

    def num_tokens(self, modality: str, frames: int) -> int:
        """Tokens one sample of `frames` frames becomes in `modality`'s backbone (sizes the batched passes)."""
        return self.family(modality).num_tokens(frames)

    # -- text ----------------------------------------------------------------------------
    def _get_prompt_embeds(self, prompts: list[str], device, max_sequence_length: int | None, modality: str | None = None):
        """`modality`'s text states `(B, L, text_dim)` and token mask `(B, L)` (None: every token counts)."""
        family = self.family(modality or self.generated)
        return family.encode_text(prompts, device, max_sequence_length or self.config.max_sequence_length)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
        device=None,
        dtype=None,
        modality: str | None = None,
    ):
        r"""Encode text for the generated modality's backbone, or `modality`'s (also usable on its own, as in diffusers).

        Args:
            prompt: a string or a list; `prompt_embeds` (`(B, L, text_dim)`, with an optional boolean
                `prompt_attention_mask` `(B, L)`) instead of text.
            negative_prompt: text of the unconditional branch; or `negative_prompt_embeds` /
                `negative_prompt_attention_mask`. Without either, the backbone's own rule: "" (the paper's choice,
                and Wan's), or zeros shaped like the prompt's states (LongCat's). Encoded only with
                `do_classifier_free_guidance`.
            num_per_prompt: each row is repeated this many times.

        Returns:
            `(prompt_embeds, prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask)`;
            the negative pair is `(None, None)` without guidance.
        """
        device = device or self._execution_device
        if prompt_embeds is None:
            prompts = as_prompt_list(prompt, 1, "prompt") if prompt is None or isinstance(prompt, str) else list(prompt)
            if not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
            prompt_embeds, prompt_attention_mask = self._get_prompt_embeds(prompts, device, max_sequence_length, modality)
        batch = prompt_embeds.shape[0]
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            rule = None if negative_prompt is not None else self.family(modality or self.generated).unconditional_text(
                prompt_embeds, prompt_attention_mask)
            negative_prompt_embeds, negative_prompt_attention_mask = rule or self._get_prompt_embeds(
                as_prompt_list(negative_prompt, batch, "negative_prompt"), device, max_sequence_length, modality)
        pairs = [(prompt_embeds, prompt_attention_mask), (negative_prompt_embeds, negative_prompt_attention_mask)]
        out = []
        for embeds, mask in pairs if do_classifier_free_guidance else pairs[:1]:
            if embeds.shape[0] != batch:
                raise ValueError(f"prompt_embeds and negative_prompt_embeds must have the same batch size, got "
                                 f"{batch} and {embeds.shape[0]}")
            if mask is not None and tuple(mask.shape) != tuple(embeds.shape[:2]):
                raise ValueError(f"an attention mask must have shape {tuple(embeds.shape[:2])} (batch, tokens), got {tuple(mask.shape)}")
            embeds = embeds.to(device=device, dtype=dtype or embeds.dtype).repeat_interleave(num_per_prompt, dim=0)
            mask = None if mask is None else mask.to(device=device, dtype=torch.bool).repeat_interleave(num_per_prompt, dim=0)
            out += [embeds, mask]
        return tuple(out) if do_classifier_free_guidance else (*out, None, None)

    # -- modality conversions ---------------------------------------------------------------
    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono `(B, samples)` -> the audio backbone's space (normalised log-mel `(B, frames, n_mels)`, or latents)."""
        return self.family("audio").encode(waveform)

    def decode(self, latents: torch.Tensor, output_type: str, seconds: list[float]) -> list:
        """Generated latents -> one output (or latent) per row, each covering its own `seconds`."""
        return self.family(self.generated).postprocess(latents, output_type, seconds)

    def make_output(self, rows: list, output_type: str, return_dict: bool):
        """One decoded row per output: rows of one shape are stacked, rows of different lengths stay a list."""
        self.maybe_free_model_hooks()
        if output_type != "pil" and all(r.shape == rows[0].shape for r in rows):
            rows = torch.stack(rows) if torch.is_tensor(rows[0]) else np.stack(rows)
        if self.generated == "audio":
            return AVLinkAudioPipelineOutput(audios=rows, sample_rate=self.sample_rate) if return_dict else (rows,)
        return AVLinkVideoPipelineOutput(frames=rows, fps=self.video_fps) if return_dict else (rows,)

    # -- checks ------------------------------------------------------------------------------
    def check_call(self, num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt):
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
        if output_type not in OUTPUT_TYPES[self.generated]:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES[self.generated]} when generating {self.generated}, got {output_type!r}")
        self.family(self.generated).check_output(output_type)
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs may only name {self._callback_tensor_inputs}, got {bad}")
        if not isinstance(num_per_prompt, int) or num_per_prompt < 1:
            raise ValueError(f"the number of outputs per prompt must be a positive integer, got {num_per_prompt!r}")

    def windows_for(self, num_video_frames: int, num_audio_frames: int) -> list[Window]:
        return plan_windows(num_video_frames, num_audio_frames, self.frame_rate("video"), self.frame_rate("audio"),
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
        state: dict,
        windows: list[Window],
        velocity: Callable[[torch.Tensor, torch.Tensor, tuple, dict], torch.Tensor],
        num_inference_steps: int,
        sigmas=None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        tokens_per_row: int = 1,
    ) -> torch.Tensor:
        """Integrate `state["latents"]` from noise to data with `self.scheduler`.

        At every step each (window, sample) row's slice of the latents is cut out and the rows run through
        `velocity(x_rows, t, rows, state)` in batched passes of at most `config.max_batch_tokens` tokens
        (`tokens_per_row` each, all branches counted): `rows` is the pass's tuple of `(window, sample)`
        pairs, `x_rows` their slices stacked, `t` the av-link time (0 noise, 1 data); `velocity` returns
        their guided velocities, reading text from `state`, which callbacks may update. Overlapping
        windows are blended with ramped weights. The scheduler sees diffusers' convention: the conversion
        is here.
        """
        latents = state["latents"]
        modality, dtype, axis = self.generated, latents.dtype, AXIS[self.generated]
        slices = [getattr(w, modality) for w in windows]
        ramp = round(self.config.window_overlap_seconds * self.frame_rate(modality))
        shape = [1] * latents.ndim
        weights = []
        for w in window_weights(slices, latents.shape[axis], ramp):
            shape[axis] = len(w)
            weights.append(w.reshape(shape).to(latents.device, torch.float32))
        shape[axis] = latents.shape[axis]  # the weights vary along time only: one value per frame
        norm = torch.zeros(shape, device=latents.device, dtype=torch.float32)
        for window, w in zip(windows, weights):
            take(norm, modality, window).add_(w)
        max_tokens = batch_token_budget(self.config.get("max_batch_tokens"), latents.device)
        passes = batch_rows(len(windows), latents.shape[0], tokens_per_row, max_tokens)
        timesteps = set_scheduler_timesteps(self.scheduler, num_inference_steps, sigmas, latents.device)
        num_train_timesteps = self.scheduler.config.get("num_train_timesteps", 1000)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        for i, timestep in self.sampling_steps(timesteps):
            t = time_from_timestep(precise_timestep(timestep), num_train_timesteps)
            latents = state["latents"]
            if len(windows) == 1 and len(passes) == 1:
                v = velocity(latents, t, passes[0], state)
            else:
                v = torch.zeros(latents.shape, device=latents.device, dtype=torch.float32)
                for rows in passes:
                    x = torch.cat([take(latents[b:b + 1], modality, windows[k]) for k, b in rows])
                    out = velocity(x, t, rows, state).float()
                    for j, (k, b) in enumerate(rows):
                        take(v[b:b + 1], modality, windows[k]).add_(weights[k] * out[j:j + 1])
                v.div_(norm)
            state["latents"] = self.scheduler.step(scheduler_output(v), timestep, latents, return_dict=False)[0].to(dtype)
            if callback_on_step_end is not None:
                outputs = callback_on_step_end(self, i, timestep, {k: state[k] for k in callback_on_step_end_tensor_inputs})
                state.update({k: v for k, v in outputs.items() if k in self._callback_tensor_inputs})
        return state["latents"]

    def sampling_steps(self, timesteps):
        """`(i, timestep)` for every step, under the progress bar, keeping diffusers' call state (`num_timesteps`,
        `current_timestep`; an `interrupt` skips the remaining steps)."""
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep, self._step_index = timestep, i
                yield i, timestep
                progress_bar.update()
        self._current_timestep = self._step_index = None

    def guidance_inputs(self, x: torch.Tensor, t: torch.Tensor, rows: tuple, state: dict) -> list[tuple]:
        """The generated backbone's inputs for a pass: batches `(x, t, text, text_mask)`, the conditional rows first,
        then under guidance the unconditional ones (negative prompts). Both branches share one batch, their texts
        padded to one length with masked-out tokens, unless the texts differ in length and padding would change
        the backbone's output (its family's `text_padding_neutral`): then each branch is a batch of its own."""
        samples = [b for _, b in rows]
        pairs = [(state["prompt_embeds"], state["prompt_attention_mask"])]
        if self.do_classifier_free_guidance:
            pairs.append((state["negative_prompt_embeds"], state["negative_prompt_attention_mask"]))
        pairs = [(embeds[samples], None if mask is None else mask[samples]) for embeds, mask in pairs]
        t = t.expand(x.shape[0])
        shared = shared_text_batch(pairs, self.family(self.generated).text_padding_neutral)
        if shared is None:
            return [(x, t, embeds, mask) for embeds, mask in pairs]
        return [(torch.cat([x] * len(pairs)), torch.cat([t] * len(pairs)), *shared)]

    def guide(self, v: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance on a pass's output laid out as by `guidance_inputs`."""
        if not self.do_classifier_free_guidance:
            return v
        v_cond, v_uncond = v.chunk(2)
        return v_uncond + self.guidance_scale * (v_cond - v_uncond)

    @staticmethod
    def pad_frames(x: torch.Tensor, modality: str, frames: int, filler: Callable[[torch.Tensor, list], torch.Tensor]) -> torch.Tensor:
        """`x` extended along `modality`'s time axis to `frames` frames with `filler(x, shape)` (to the windows' extent)."""
        axis = AXIS[modality]
        if x.shape[axis] >= frames:
            return x
        shape = list(x.shape)
        shape[axis] = frames - x.shape[axis]
        return torch.cat([x, filler(x, tuple(shape))], dim=axis)

    def noise_filler(self, generator):
        """A `pad_frames` filler that draws fresh noise (for generated latents)."""
        return lambda x, shape: randn_tensor(shape, generator=generator, device=x.device, dtype=x.dtype)

    def start_call(self, guidance_scale: float, num_inference_steps: int, guidance_start: float = 0.0,
                   guidance_stop: float = 1.0) -> None:
        check_guidance_span(guidance_start, guidance_stop)
        self._guidance_scale = guidance_scale
        self._guided_steps = guided_steps(guidance_start, guidance_stop, num_inference_steps)
        self._step_index = None
        self._interrupt = False
        self._current_timestep = None

    # -- saving ------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, model_card: bool = True, training_info: dict | None = None, **kwargs):
        """diffusers' `save_pretrained`, without the build machine's paths, plus a model card `README.md` (pass
        `training_info` to record how the checkpoint was trained; a pipeline loaded from an av-link folder
        keeps that folder's)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        folders.drop_source_paths(save_directory)
        if model_card:
            from .model_card import write_model_card

            write_model_card(self, save_directory, training_info=training_info or folders.source_training_info(self))

    def _upload_folder(self, working_dir, repo_id, *args, **kwargs):
        # diffusers' push_to_hub saves (with our card), then writes its generic card over README.md: put ours back.
        if not kwargs.get("subfolder"):
            from .model_card import write_model_card

            write_model_card(self, working_dir, training_info=folders.source_training_info(self))
        return super()._upload_folder(working_dir, repo_id, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' `from_pretrained`; an adapter-only folder (see :mod:`av_link.pipelines.folders`) takes its
        other components from the folder it names, and a folder that names a LoRA as part of its model (a distilled
        student's) gets it fused in."""
        passed = list(kwargs)
        kwargs = {**folders.shared_components(cls, pretrained_model_name_or_path, kwargs), **kwargs}
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        folders.fuse_folder_lora(pipe, pretrained_model_name_or_path, passed=passed)
        return pipe
