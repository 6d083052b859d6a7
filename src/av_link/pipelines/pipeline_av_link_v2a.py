"""Video-to-audio: `AVLinkV2APipeline.from_pretrained(dir)(video=...)`."""

from .pipeline_av_link_base import passed_on
from .pipeline_av_link_cross_modal import CALL_ARGUMENTS, AVLinkCrossModalPipeline


class AVLinkV2APipeline(AVLinkCrossModalPipeline):
    r"""Generate the soundtrack of a video with AV-Link.

    Components: `audio_transformer`, `video_transformer` (frozen backbones), `fusion_adapter`, `scheduler`
    (`FlowMatchEulerScheduler`), `text_encoder` + `tokenizer` (T5 by default), `audio_frontend`
    (`AVLinkMelSpectrogram`) and `vocoder` (`SpeechT5HifiGan` or `GriffinLimVocoder`). Sampling defaults
    (conditioning time 0.96, 64 steps, guidance 5.0) live in the pipeline config. With diffusers' LongCat-AudioDiT
    and Wan as backbones (`from_backbones`), `audio_vae` and `video_vae` take the front end's and vocoder's place
    and each backbone may have its own text encoder (`audio_text_encoder`, `video_text_encoder`).

    Example:
        ```py
        pipe = AVLinkV2APipeline.from_pretrained("path/to/av-link-v2a")
        out = pipe(video="clip.mp4", prompt="a dog barks")
        out.audios[0], out.sample_rate

        pipe = AVLinkV2APipeline.from_backbones(audio="LongCat-AudioDiT-1B-Diffusers", video="Wan2.1-T2V-1.3B-Diffusers",
                                                fusion_adapter="path/to/fusion_adapter")
        ```
    """

    generated = "audio"
    default_conditioning_timestep = 0.96

    def __call__(
        self,
        video=None,
        prompt=None,
        conditioning_prompt=None,
        negative_prompt=None,
        video_fps: float | list[float] | None = None,
        num_audios_per_prompt: int = 1,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_start: float | None = None,
        guidance_stop: float | None = None,
        conditioning_timestep: float | None = None,
        generator=None,
        latents=None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int | None = None,
        sigmas=None,
        prompt_embeds=None,
        prompt_attention_mask=None,
        negative_prompt_embeds=None,
        negative_prompt_attention_mask=None,
        conditioning_prompt_embeds=None,
        conditioning_prompt_attention_mask=None,
    ):
        r"""
        Args:
            video: a path to a video file, a list of PIL frames, a uint8 or [0, 1] float array `(F, H, W, C)`, a
                tensor `(B, C, F, H, W)`, or a list of such videos (of any lengths and rates). Resampled to the
                model's frame rate and resized/cropped to its resolution; inputs longer than the trained clip are
                processed in overlapping windows.
            prompt: text for the generated audio; `conditioning_prompt`: text for the video (both default to "").
            negative_prompt: text of the unconditional branch (default "", as in the paper).
            video_fps: frame rate of frames in memory (required for them; one per video for a list). A file
                brings its own rate.
            num_audios_per_prompt: samples per input video.
            num_inference_steps, guidance_scale, conditioning_timestep: default to the pipeline config. Guidance
                applies when `guidance_scale > 1` (diffusers' convention).
            guidance_start, guidance_stop: the span of the steps that are guided, as fractions (diffusers'
                `ClassifierFreeGuidance(start, stop)`: steps `int(start * N) <= i < int(stop * N)`); the others run
                the conditional branch alone, at about half the cost. Default: the pipeline config (the paper: 0, 1).
            sigmas: a custom noise grid, decreasing from 1 (default: the paper's uniform grid 1, 1 - 1/N, ..., 1/N).
            generator: `torch.Generator`, or one per output, for the conditioning noise and the initial noise.
            latents: initial audio noise in the audio backbone's space: `(B, frames, n_mels)`, or LongCat's
                `(B, latents, latent_dim)`.
            prompt_embeds, negative_prompt_embeds, conditioning_prompt_embeds: text-encoder states `(B, L, D)`
                (one row per input) instead of text, each with an optional boolean `*_attention_mask` `(B, L)`.
            output_type: "np" or "pt" waveforms `(B, samples)`, or "latent" (normalised mel, or LongCat's latents).
            callback_on_step_end: `f(pipe, step, timestep, tensors) -> dict`, as in diffusers; `timestep` is the
                scheduler's (sigma * 1000); `tensors` holds `callback_on_step_end_tensor_inputs` (any of
                `_callback_tensor_inputs`); returned tensors replace them.

        Returns:
            `AVLinkAudioPipelineOutput` with `audios` covering the same seconds as each video, and `sample_rate`.
        """
        return self.generate(conditioning_input=video, conditioning_rate=video_fps, num_per_prompt=num_audios_per_prompt,
                             **passed_on(locals(), CALL_ARGUMENTS))
