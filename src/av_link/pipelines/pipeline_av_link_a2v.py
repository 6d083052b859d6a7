"""Audio-to-video: `AVLinkA2VPipeline.from_pretrained(dir)(audio=...)`."""

from .pipeline_av_link_base import passed_on
from .pipeline_av_link_cross_modal import CALL_ARGUMENTS, AVLinkCrossModalPipeline


class AVLinkA2VPipeline(AVLinkCrossModalPipeline):
    r"""Generate a video for a sound with AV-Link. Same components as `AVLinkV2APipeline` (the vocoder is
    optional here); the conditioning audio is noised to the fixed time 0.8 by default.

    Example:
        ```py
        pipe = AVLinkA2VPipeline.from_pretrained("path/to/av-link-a2v")
        out = pipe(audio="hits.wav", prompt="a hammer hitting a metal plate")
        out.frames[0], out.fps
        ```
    """

    generated = "video"
    default_conditioning_timestep = 0.8
    model_cpu_offload_seq = "audio_vae->text_encoder->audio_text_encoder->video_text_encoder->video_vae"

    def __call__(
        self,
        audio=None,
        prompt=None,
        conditioning_prompt=None,
        negative_prompt=None,
        sample_rate: int | list[int] | None = None,
        num_videos_per_prompt: int = 1,
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
            audio: a path to a wav or any file with an audio track, a waveform array/tensor `(samples,)`,
                `(channels, samples)` or `(batch, channels, samples)` with `sample_rate=`, or a list of such audios
                (of any lengths and rates; `sample_rate` one for all or one per audio). Mixed to mono and
                resampled to the model's rate; long inputs are processed in overlapping windows.
            prompt: text for the generated video; `conditioning_prompt`: text for the audio.
            num_videos_per_prompt: samples per input audio.
            latents: initial video noise in the video backbone's space: pixels `(B, 3, F, H, W)`, or Wan's latents
                `(B, C, 1 + (F - 1) / 4, H / 8, W / 8)`.
            output_type: "np" `(B, F, H, W, 3)` in [0, 1], "pt" `(B, F, 3, H, W)`, "pil", or "latent" (pixels `(B, 3, F, H, W)`
                in [-1, 1], or Wan's latents).
            Other arguments as for `AVLinkV2APipeline`.

        Returns:
            `AVLinkVideoPipelineOutput` with `frames` covering the same seconds as each audio, and `fps`.
        """
        return self.generate(conditioning_input=audio, conditioning_rate=sample_rate, num_per_prompt=num_videos_per_prompt,
                             **passed_on(locals(), CALL_ARGUMENTS))
