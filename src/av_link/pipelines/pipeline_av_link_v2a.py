"""Video-to-audio: `AVLinkV2APipeline.from_pretrained(dir)(video=...)`."""

from .pipeline_av_link_cross_modal import AVLinkCrossModalPipeline


class AVLinkV2APipeline(AVLinkCrossModalPipeline):
    r"""Generate the soundtrack of a video with AV-Link.

    Components: `audio_transformer`, `video_transformer` (frozen backbones), `fusion_adapter`, `scheduler`
    (`FlowMatchEulerScheduler`), `text_encoder` + `tokenizer` (T5 by default), `audio_frontend`
    (`AVLinkMelSpectrogram`) and `vocoder` (`SpeechT5HifiGan` or `GriffinLimVocoder`). Sampling defaults
    (conditioning time 0.96, 64 steps, guidance 5.0) live in the pipeline config.

    Example:
        ```py
        pipe = AVLinkV2APipeline.from_pretrained("path/to/av-link-v2a")
        out = pipe(video="clip.mp4", prompt="a dog barks")
        out.audios[0], out.sample_rate
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
        video_fps: float | None = None,
        num_audios_per_prompt: int = 1,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        conditioning_timestep: float | None = None,
        generator=None,
        latents=None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int | None = None,
    ):
        r"""
        Args:
            video: a path to a video file, a list of PIL frames, a uint8 or [0, 1] float array `(F, H, W, C)`, or
                a tensor `(B, C, F, H, W)`. Resampled to the model's frame rate and resized/cropped to its
                resolution; inputs longer than the trained clip are processed in overlapping windows.
            prompt: text for the generated audio; `conditioning_prompt`: text for the video (both default to "").
            negative_prompt: text of the unconditional branch (default "", as in the paper).
            video_fps: frame rate of an array/tensor input (defaults to the file's rate, else the model's).
            num_audios_per_prompt: samples per input video.
            num_inference_steps, guidance_scale, conditioning_timestep: default to the pipeline config.
            generator: `torch.Generator` (or one per output) for the conditioning noise and the initial noise.
            latents: initial audio noise `(B, frames, n_mels)`.
            output_type: "np" or "pt" waveforms `(B, samples)`, or "latent" (normalised mel).
            callback_on_step_end: `f(pipe, step, t, {"latents": ...}) -> dict`; a returned "latents" replaces them.

        Returns:
            `AVLinkAudioPipelineOutput` with `audios` covering the same seconds as the video, and `sample_rate`.
        """
        return self.generate(
            video, video_fps, prompt, conditioning_prompt, negative_prompt, num_audios_per_prompt, num_inference_steps,
            guidance_scale, conditioning_timestep, generator, latents, output_type, return_dict, callback_on_step_end,
            callback_on_step_end_tensor_inputs, max_sequence_length,
        )
