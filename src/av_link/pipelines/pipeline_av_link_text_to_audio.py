"""Text-to-audio with the frozen audio backbone alone."""

from .pipeline_av_link_base import passed_on
from .pipeline_av_link_text_to_signal import CALL_ARGUMENTS, AVLinkTextToSignalPipeline


class AVLinkTextToAudioPipeline(AVLinkTextToSignalPipeline):
    """`pipe(prompt="rain on a tin roof", audio_length_in_s=5.0).audios`"""

    generated = "audio"
    _optional_components = []
    model_cpu_offload_seq = "text_encoder->audio_transformer->vocoder"

    def __init__(self, audio_transformer, scheduler, text_encoder, tokenizer, audio_frontend, vocoder,
                 num_inference_steps: int = 64, guidance_scale: float = 5.0, clip_seconds: float = 5.16,
                 window_overlap_seconds: float | None = None, max_sequence_length: int = 128,
                 max_batch_tokens: int | None = None):
        super().__init__()
        self.register_modules(audio_transformer=audio_transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, audio_frontend=audio_frontend, vocoder=vocoder)
        self.check_components(("audio",))
        self.register_sampling_config(num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds, max_sequence_length,
                                      max_batch_tokens)

    def __call__(self, prompt=None, negative_prompt=None, audio_length_in_s: float | None = None, num_audios_per_prompt: int = 1,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None, generator=None, latents=None,
                 output_type: str = "np", return_dict: bool = True, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=("latents",), max_sequence_length: int | None = None, sigmas=None,
                 prompt_embeds=None, prompt_attention_mask=None, negative_prompt_embeds=None,
                 negative_prompt_attention_mask=None):
        """`audio_length_in_s` defaults to the trained clip length; other arguments as for `AVLinkV2APipeline`."""
        return self.generate_from_text(seconds=audio_length_in_s, num_per_prompt=num_audios_per_prompt, **passed_on(locals(), CALL_ARGUMENTS))
