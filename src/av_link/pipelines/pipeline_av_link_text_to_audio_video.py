"""Joint text-to-audio+video: both modalities start from noise and are integrated together through the adapter.

AV-Link sketches this with t_a = t_v (supplementary D.4); SyncFlow generates audio and video together with its
modality adaptor; Ishii et al. give each modality its own local time through a timestep adjustment. All three are
this pipeline with another adapter (`AVLinkFusionAdapter` config: `fusion_type`, `reinject`, `timestep_gamma`;
docs/joint.md). SyncFlow's zero-shot V2A is a sampler option here, for any joint model: `replace_video=` puts the
given video, noised to the current time, in place of the generated one at every step (and `replace_audio=` the same
for A2V).
"""

import numpy as np
import torch

from ..models.joint import joint_forward
from ..schedulers.flow_time import adjusted_times, noisy_sample, precise_timestep, time_from_timestep
from .pipeline_av_link_base import AXIS, as_prompt_list, set_scheduler_timesteps, shared_text_batch
from .pipeline_av_link_cross_modal import AVLinkCrossModalPipeline
from .pipeline_output import AVLinkAudioVideoPipelineOutput

MODALITIES = ("audio", "video")


class AVLinkTextToAudioVideoPipeline(AVLinkCrossModalPipeline):
    """Audio and video from their texts, together (the components of the V2A / A2V pipelines).

    Sampling is Euler on the scheduler's time grid, each modality stepped by its own local times (`timestep_gamma`;
    0: both at the global time). Classifier-free guidance is on text: the unconditional branch is the same joint
    model with the negative (by default empty) prompts for both modalities, so guidance sharpens what the texts say
    and leaves the link between the modalities in both branches. Outputs of `duration_in_s` (default: the trained
    clip length) are made in one window.
    """

    generated = "audio"  # whose text rules the shared machinery applies by default; both modalities are generated
    _callback_tensor_inputs = ["audio_latents", "video_latents"]

    def check_adapter(self, fusion_adapter) -> None:  # any link works here: each modality is generated
        pass

    def decode(self, latents: dict, output_type: str, seconds: list[float]) -> dict:
        return {m: self.family(m).postprocess(latents[m], output_type, seconds) for m in MODALITIES}

    @torch.no_grad()
    def __call__(
        self,
        audio_prompt=None,
        video_prompt=None,
        negative_audio_prompt=None,
        negative_video_prompt=None,
        duration_in_s: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        timestep_gamma: float | None = None,
        replace_video=None,
        video_fps: float | None = None,
        replace_audio=None,
        sample_rate: int | None = None,
        generator=None,
        audio_latents: torch.Tensor | None = None,
        video_latents: torch.Tensor | None = None,
        sigmas=None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("audio_latents", "video_latents"),
        max_sequence_length: int | None = None,
    ):
        r"""
        Args:
            audio_prompt, video_prompt: the texts of the two modalities (a string, or one per output; default "").
            negative_audio_prompt, negative_video_prompt: texts of the unconditional branch (default "").
            duration_in_s: seconds of both outputs (default: the pipeline's `clip_seconds`, or the replaced input's).
            num_inference_steps, guidance_scale: default to the pipeline config; guidance applies when > 1.
            timestep_gamma: Ishii et al.'s timestep adjustment (`schedulers.adjusted_times`); default: the adapter's
                `timestep_gamma`, the value it was trained with.
            replace_video, video_fps: zero-shot V2A (SyncFlow): a video (any form the V2A pipeline takes) whose
                latents, noised to the current video time with the initial video noise, replace the generated
                video latents at every step; the audio is the result. `replace_audio`, `sample_rate`: the same for A2V.
            generator, audio_latents, video_latents: the initial noise (audio drawn first).
            output_type: "np" / "pt" waveforms and frames, or "latent".
            callback_on_step_end: `f(pipe, step, timestep, tensors)` with `audio_latents` / `video_latents`.

        Returns:
            `AVLinkAudioVideoPipelineOutput` with `audios`, `sample_rate`, `frames`, `fps`.
        """
        num_inference_steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        gamma = self.fusion_adapter.config.timestep_gamma if timestep_gamma is None else float(timestep_gamma)
        self.check_call(num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, 1)
        if replace_video is not None and replace_audio is not None:
            raise ValueError("replace one modality at most (replace_video for V2A, replace_audio for A2V)")
        self.start_call(guidance_scale, num_inference_steps)
        device = self._execution_device

        replaced = self._replacement(replace_video, video_fps, replace_audio, sample_rate)
        batch = max(len(p) if isinstance(p, (list, tuple)) else 1 for p in (audio_prompt, video_prompt))
        batch = max(batch, replaced[1].shape[0]) if replaced else batch
        if duration_in_s is None:
            duration_in_s = replaced[2] if replaced else self.config.clip_seconds
        if not duration_in_s > 0:
            raise ValueError(f"duration_in_s must be positive, got {duration_in_s}")
        texts = {}
        for m, prompt, negative in (("audio", audio_prompt, negative_audio_prompt), ("video", video_prompt, negative_video_prompt)):
            texts[m] = self.encode_prompt(as_prompt_list(prompt, batch, f"{m}_prompt"), negative, self.do_classifier_free_guidance,
                                          max_sequence_length=max_sequence_length, device=device, modality=m)
        dtype = self.family("audio").sampling_dtype
        initial = {"audio": audio_latents, "video": video_latents}
        latents = {}
        for m in MODALITIES:  # audio's noise first, then video's
            shape = self.family(m).latent_shape(batch, self.family(m).num_frames(duration_in_s))
            latents[m] = self.prepare_latents(shape, generator, initial[m], device, dtype)
        if replaced:
            modality, signal = replaced[0], self._fit(replaced[1], replaced[0], latents[replaced[0]], device, dtype)
            noise = latents[modality].clone()  # the replaced modality's path: t * signal + (1 - t) * this noise

        timesteps = set_scheduler_timesteps(self.scheduler, num_inference_steps, self.default_sigmas(num_inference_steps, sigmas), device)
        num_train = self.scheduler.config.get("num_train_timesteps", 1000)
        grid = [time_from_timestep(precise_timestep(ts), num_train) for ts in timesteps] + [torch.ones((), dtype=torch.float64, device=device)]
        local = [adjusted_times(t, gamma) for t in grid]  # (t_audio, t_video) per grid point
        for i, timestep in self.sampling_steps(timesteps):
            now, nxt = dict(zip(MODALITIES, local[i])), dict(zip(MODALITIES, local[i + 1]))
            if replaced:
                latents[modality] = noisy_sample(signal, noise, now[modality].to(dtype)).to(dtype)
            v = self._velocity(latents, now, texts, skip=replaced[0] if replaced else None)
            for m in v:
                latents[m] = (latents[m] + (nxt[m] - now[m]).to(dtype) * v[m].to(dtype)).to(dtype)
            if replaced:
                latents[modality] = noisy_sample(signal, noise, nxt[modality].to(dtype)).to(dtype)
            if callback_on_step_end is not None:
                named = {f"{m}_latents": latents[m] for m in MODALITIES}
                outputs = callback_on_step_end(self, i, timestep, {k: named[k] for k in callback_on_step_end_tensor_inputs})
                latents.update({k[:-len("_latents")]: x for k, x in (outputs or {}).items() if k in named})

        decoded = self.decode(latents, output_type, [duration_in_s] * batch)
        self.maybe_free_model_hooks()
        stacked = {m: rows if output_type == "pil" else torch.stack(rows) if torch.is_tensor(rows[0]) else np.stack(rows)
                   for m, rows in decoded.items()}
        if not return_dict:
            return stacked["audio"], stacked["video"]
        return AVLinkAudioVideoPipelineOutput(audios=stacked["audio"], sample_rate=self.sample_rate,
                                              frames=stacked["video"], fps=self.video_fps)

    def _velocity(self, latents: dict, times: dict, texts: dict, skip: str | None) -> dict:
        """Guided velocities of both modalities (but `skip`, the replaced one): the joint model on the prompts,
        and under guidance on the negative prompts, both branches in one batch where each modality's texts can
        share one (`shared_text_batch`)."""
        backbones = {m: self.family(m).backbone for m in MODALITIES}
        want = {m: m != skip for m in MODALITIES}
        branches = [(0, 1)] + ([(2, 3)] if self.do_classifier_free_guidance else [])
        shared = {m: shared_text_batch([(texts[m][e], texts[m][k]) for e, k in branches], self.family(m).text_padding_neutral)
                  for m in MODALITIES}
        if all(shared[m] is not None for m in MODALITIES):  # one pass: [conditional rows; unconditional rows]
            passes = [{m: (torch.cat([latents[m]] * len(branches)), *shared[m]) for m in MODALITIES}]
        else:
            passes = [{m: (latents[m], texts[m][e], texts[m][k]) for m in MODALITIES} for e, k in branches]
        outs = {m: [] for m in MODALITIES}
        for inputs in passes:
            x = {m: inputs[m][0].to(backbones[m].dtype) for m in MODALITIES}
            out = joint_forward(
                backbones["audio"], backbones["video"], self.fusion_adapter, x["audio"], x["video"],
                times["audio"].expand(x["audio"].shape[0]), times["video"].expand(x["video"].shape[0]),
                inputs["audio"][1], inputs["video"][1], inputs["audio"][2], inputs["video"][2],
                return_audio=want["audio"], return_video=want["video"],
            )
            for m in MODALITIES:
                if want[m]:
                    outs[m].append(getattr(out, m).float())
        return {m: self.guide(torch.cat(outs[m])) for m in MODALITIES if want[m]}

    def _replacement(self, video, video_fps, audio, sample_rate):
        """(modality, its signal in model space (B, ...), seconds) for zero-shot V2A / A2V, or None."""
        if video is None and audio is None:
            return None
        modality, value, rate = ("video", video, video_fps) if video is not None else ("audio", audio, sample_rate)
        prepared = self.family(modality).prepare(value, rate)
        lengths = {signal.shape[AXIS[modality]] for signal, _ in prepared}
        if len(lengths) != 1:
            raise ValueError(f"the replaced {modality} inputs must have one length in model space, got {sorted(lengths)}")
        return modality, torch.cat([signal for signal, _ in prepared]), prepared[0][1]

    @staticmethod
    def _fit(signal: torch.Tensor, modality: str, like: torch.Tensor, device, dtype) -> torch.Tensor:
        """The replaced signal cut or padded (last frame held) to the generated length, one row per output."""
        axis, frames = AXIS[modality], like.shape[AXIS[modality]]
        signal = signal.to(device=device, dtype=dtype)
        if signal.shape[axis] < frames:
            last = signal.narrow(axis, signal.shape[axis] - 1, 1)
            signal = torch.cat([signal] + [last] * (frames - signal.shape[axis]), dim=axis)
        signal = signal.narrow(axis, 0, frames)
        if signal.shape[0] != like.shape[0]:
            if signal.shape[0] != 1:
                raise ValueError(f"got {signal.shape[0]} replaced inputs for {like.shape[0]} outputs")
            signal = signal.expand(like.shape[0], *signal.shape[1:])
        if tuple(signal.shape) != tuple(like.shape):
            raise ValueError(f"the replaced {modality} has shape {tuple(signal.shape)} in model space, the generated "
                             f"{modality} {tuple(like.shape)}")
        return signal
