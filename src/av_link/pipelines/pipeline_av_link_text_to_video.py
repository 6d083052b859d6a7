"""Text-to-video with the frozen video backbone alone."""

from .pipeline_av_link_base import passed_on
from .pipeline_av_link_text_to_signal import CALL_ARGUMENTS, AVLinkTextToSignalPipeline


class AVLinkTextToVideoPipeline(AVLinkTextToSignalPipeline):
    """`pipe(prompt="a ball bouncing on a wooden floor", duration_in_s=5.16).frames`"""

    generated = "video"
    model_cpu_offload_seq = "text_encoder->video_transformer"

    def __init__(self, video_transformer, scheduler, text_encoder, tokenizer, num_inference_steps: int = 64,
                 guidance_scale: float = 5.0, height: int = 36, width: int = 64, clip_seconds: float = 5.16,
                 window_overlap_seconds: float | None = None, max_sequence_length: int = 128,
                 max_batch_tokens: int | None = None):
        super().__init__()
        self.register_modules(video_transformer=video_transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.check_components(("video",))
        self.register_sampling_config(num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds, max_sequence_length,
                                      max_batch_tokens, height=height, width=width)

    def __call__(self, prompt=None, negative_prompt=None, duration_in_s: float | None = None, num_videos_per_prompt: int = 1,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None, generator=None, latents=None,
                 output_type: str = "np", return_dict: bool = True, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=("latents",), max_sequence_length: int | None = None, sigmas=None,
                 prompt_embeds=None, prompt_attention_mask=None, negative_prompt_embeds=None,
                 negative_prompt_attention_mask=None):
        """`duration_in_s` defaults to the trained clip length; other arguments as for `AVLinkA2VPipeline`."""
        return self.generate_from_text(seconds=duration_in_s, num_per_prompt=num_videos_per_prompt, **passed_on(locals(), CALL_ARGUMENTS))
