"""Cross-modal sampling shared by V2A and A2V: the two directions differ only in which side is generated."""

from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..models.joint import conditioning_states, embed_prefix, joint_forward
from ..schedulers.flow_time import noisy_sample
from ..utils.heap import release_free_memory
from .inputs import split_inputs
from .pipeline_av_link_base import AXIS, TEXT_INPUTS, AVLinkPipelineBase, as_prompt_list, check_guidance_span, take
from .windows import extent

# Cached conditioning prefixes (see `sample_group`): a 5-minute input at the shipped tiny V2A model's size needs ~40 MB
# for all its windows, a 10 s one ~1.4 MB; past this budget (and past the first pass) they are recomputed at each step.
PREFIX_CACHE_BYTES = 16 * 2**20

# Components beside the backbones, adapter and scheduler; each modality's family says which it needs: av-link's own
# backbones the shared text encoder, the mel front end (and a vocoder to give waveforms); diffusers' Wan / LongCat
# their VAE and a text encoder, shared, or per modality (`audio_text_encoder`, ...) where the two differ.
OPTIONAL_COMPONENTS = ["text_encoder", "tokenizer", "audio_frontend", "vocoder", "audio_vae", "video_vae", "audio_text_encoder",
                       "audio_tokenizer", "video_text_encoder", "video_tokenizer"]

# V2A's and A2V's `__call__` arguments that `generate` takes under the same name (the rest are renamed)
CALL_ARGUMENTS = ("prompt", "conditioning_prompt", "negative_prompt", "num_inference_steps", "sigmas", "guidance_scale",
                  "guidance_start", "guidance_stop",
                  "conditioning_timestep", "generator", "latents", "output_type", "return_dict", "callback_on_step_end",
                  "callback_on_step_end_tensor_inputs", "max_sequence_length", *TEXT_INPUTS, "conditioning_prompt_embeds",
                  "conditioning_prompt_attention_mask")


@dataclass
class ConditioningItem:
    signal: torch.Tensor  # one input in model space, batch of 1
    seconds: float
    num_video_frames: int
    num_audio_frames: int

    @property
    def key(self) -> tuple:  # items with equal keys sample together as one batch
        return tuple(self.signal.shape), self.num_video_frames, self.num_audio_frames


class AVLinkCrossModalPipeline(AVLinkPipelineBase):
    """Generate one modality from the other through the Fusion Blocks (paper §3.3, "Inference").

    The conditioning input is noised once, to the fixed `conditioning_timestep`, and fed to its frozen
    backbone at every step; only that backbone's blocks up to the last fusion point run, and those
    before the first fusion point run once. Classifier-free guidance drops the conditioning modality
    and the text together: the unconditional branch is the generated modality's backbone alone with the
    negative (by default empty) prompt.

    A batch may mix inputs of different lengths or rates: inputs of one length in model space sample together,
    each length in a sampling loop of its own, so every output equals its single run (pass one generator per
    output for that); outputs of different lengths come back as a list.

    Inputs longer than `clip_seconds` are sampled in windows overlapping by `window_overlap_seconds`
    (:mod:`av_link.pipelines.windows`). At every step the windows of all inputs and both guidance branches run
    as batched forward passes of at most `max_batch_tokens` tokens (config; lower it to bound peak memory,
    raise it for throughput; the default, None, takes 2**12 on a CPU and 2**17 on an accelerator): the result
    equals running them one by one.

    The backbones may be av-link's own (mel and pixels) or diffusers' Wan and LongCat-AudioDiT, which run in their
    VAEs' latent spaces (`from_backbones` builds such a pipeline from their diffusers pipelines): the conditioning
    input is encoded by its VAE and noised there, the generated latents are decoded by the other VAE, and each
    backbone's text follows its own pipeline's rules (:mod:`.families`). With a zero-gated adapter the output then
    equals the generated backbone's diffusers pipeline on the same seed: its initial latents are drawn first, as
    that pipeline draws them, and the conditioning noise after (av-link's own backbones draw the conditioning noise
    first, as their released checkpoints were sampled).
    """

    default_conditioning_timestep = 0.96
    _optional_components = OPTIONAL_COMPONENTS
    # The joint forward interleaves both backbones and the adapter block by block (and calls the transformers'
    # submodules directly, so model-level hooks would never fire): with `enable_model_cpu_offload` they stay
    # resident together. The text encoders (T5-XXL: the largest part), VAEs and vocoder are offloaded between uses.
    _exclude_from_cpu_offload = ["audio_transformer", "video_transformer", "fusion_adapter", "audio_frontend"]
    model_cpu_offload_seq = "video_vae->text_encoder->audio_text_encoder->video_text_encoder->audio_vae->vocoder"

    def __init__(
        self,
        audio_transformer,
        video_transformer,
        fusion_adapter,
        scheduler,
        text_encoder=None,
        tokenizer=None,
        audio_frontend=None,
        vocoder=None,
        audio_vae=None,
        video_vae=None,
        audio_text_encoder=None,
        audio_tokenizer=None,
        video_text_encoder=None,
        video_tokenizer=None,
        conditioning_timestep: float | None = None,
        num_inference_steps: int = 64,
        guidance_scale: float = 5.0,
        height: int = 36,
        width: int = 64,
        clip_seconds: float = 5.16,
        window_overlap_seconds: float | None = None,
        max_sequence_length: int = 128,
        max_batch_tokens: int | None = None,
        sigmas: list[float] | None = None,
        video_fps: float | None = None,
        base_models: dict | None = None,
        guidance_start: float = 0.0,
        guidance_stop: float = 1.0,
    ):
        super().__init__()
        conditioning_timestep = self.default_conditioning_timestep if conditioning_timestep is None else conditioning_timestep
        if not 0.0 <= conditioning_timestep <= 1.0:
            raise ValueError(f"conditioning_timestep must be in [0, 1], got {conditioning_timestep}")
        self.register_modules(
            audio_transformer=audio_transformer, video_transformer=video_transformer, fusion_adapter=fusion_adapter,
            scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, audio_frontend=audio_frontend, vocoder=vocoder,
            audio_vae=audio_vae, video_vae=video_vae, audio_text_encoder=audio_text_encoder, audio_tokenizer=audio_tokenizer,
            video_text_encoder=video_text_encoder, video_tokenizer=video_tokenizer,
        )
        # `video_fps`: the pixel rate of a video backbone whose config has none (Wan); `base_models`: the diffusers
        # pipelines `from_backbones` linked, named in the model card. Recorded only when set, so folders of av-link's
        # own backbones keep their model_index.json.
        extra = {k: v for k, v in dict(video_fps=video_fps, base_models=base_models).items() if v is not None}
        if (guidance_start, guidance_stop) != (0.0, 1.0):  # the paper guides every step; other spans are recorded
            check_guidance_span(guidance_start, guidance_stop)
            extra.update(guidance_start=guidance_start, guidance_stop=guidance_stop)
        self.register_sampling_config(num_inference_steps, guidance_scale, clip_seconds, window_overlap_seconds, max_sequence_length,
                                      max_batch_tokens, conditioning_timestep=conditioning_timestep, height=height, width=width,
                                      sigmas=sigmas, **extra)
        self.check_components(("audio", "video"))
        fusion_adapter.check_backbones(audio_transformer, video_transformer)
        self.check_adapter(fusion_adapter)

    def check_adapter(self, fusion_adapter) -> None:
        if not fusion_adapter.reinjects(self.generated):
            raise ValueError(f"this fusion adapter reinjects only into the {fusion_adapter.config.reinject} backbone, so "
                             f"it cannot condition the {self.generated} that {type(self).__name__} generates")

    @classmethod
    def from_backbones(cls, audio, video, fusion_adapter, **kwargs):
        r"""Link two diffusers pipelines with a Fusion adapter: `audio` a `LongCatAudioDiTPipeline`, `video` a
        `WanPipeline`, each a folder, a Hub id or a loaded pipeline; `fusion_adapter` an `AVLinkFusionAdapter` or its
        folder. The backbones, VAEs and text encoders are theirs (one text encoder where both hold the same model);
        the sampler is the paper's Euler with the generated backbone's own shift. Other keyword arguments are pipeline
        config (`conditioning_timestep`, `video_fps`, `height`, ...; each backbone family's defaults otherwise) or
        loading arguments (`torch_dtype`, `local_files_only`, ...). See :mod:`av_link.pipelines.from_backbones`."""
        from .from_backbones import link_pipelines

        return link_pipelines(cls, audio, video, fusion_adapter, **kwargs)

    @property
    def conditioning(self) -> str:
        return "video" if self.generated == "audio" else "audio"

    def prepare_conditioning(self, inputs, rates) -> list[ConditioningItem]:
        """One item per conditioning input (a stacked tensor gives one per row), in model space."""
        cond, gen = self.family(self.conditioning), self.family(self.generated)
        items = []
        for entry, rate in split_inputs(inputs, rates, self.conditioning):
            for signal, seconds in cond.prepare(entry, rate):
                frames = {self.conditioning: signal.shape[AXIS[self.conditioning]], self.generated: gen.num_frames(seconds)}
                items.append(ConditioningItem(signal, seconds, frames["video"], frames["audio"]))
        return items

    @torch.no_grad()
    def generate(
        self,
        *,
        conditioning_input,
        conditioning_rate=None,
        prompt=None,
        conditioning_prompt=None,
        negative_prompt=None,
        num_per_prompt: int = 1,
        num_inference_steps: int | None = None,
        sigmas=None,
        guidance_scale: float | None = None,
        guidance_start: float | None = None,
        guidance_stop: float | None = None,
        conditioning_timestep: float | None = None,
        generator=None,
        latents: torch.Tensor | None = None,
        prompt_embeds=None,
        prompt_attention_mask=None,
        negative_prompt_embeds=None,
        negative_prompt_attention_mask=None,
        conditioning_prompt_embeds=None,
        conditioning_prompt_attention_mask=None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int | None = None,
    ):
        num_inference_steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        sigmas = self.default_sigmas(num_inference_steps, sigmas)  # a distilled student's own grid
        t_c = self.config.conditioning_timestep if conditioning_timestep is None else float(conditioning_timestep)
        if not 0.0 <= t_c <= 1.0:
            raise ValueError(f"conditioning_timestep must be in [0, 1], got {t_c}")
        if conditioning_input is None:
            raise ValueError(f"pass the conditioning {self.conditioning} ({self.conditioning}=...)")
        self.check_call(num_inference_steps, guidance_scale, output_type, callback_on_step_end_tensor_inputs, num_per_prompt)
        self.start_call(guidance_scale, num_inference_steps,
                        self.config.get("guidance_start", 0.0) if guidance_start is None else float(guidance_start),
                        self.config.get("guidance_stop", 1.0) if guidance_stop is None else float(guidance_stop))
        device = self._execution_device

        items = self.prepare_conditioning(conditioning_input, conditioning_rate)
        batch = len(items)
        text = self.encode_prompt(
            as_prompt_list(prompt, batch, "prompt") if prompt_embeds is None else None, negative_prompt,
            self.do_classifier_free_guidance, num_per_prompt, prompt_embeds, prompt_attention_mask, negative_prompt_embeds,
            negative_prompt_attention_mask, max_sequence_length, device,
        )
        cond_text = self.encode_prompt(
            as_prompt_list(conditioning_prompt, batch, "conditioning_prompt") if conditioning_prompt_embeds is None else None,
            do_classifier_free_guidance=False, num_per_prompt=num_per_prompt, prompt_embeds=conditioning_prompt_embeds,
            prompt_attention_mask=conditioning_prompt_attention_mask, max_sequence_length=max_sequence_length, device=device,
            modality=self.conditioning,
        )[:2]
        if text[0].shape[0] != batch * num_per_prompt or cond_text[0].shape[0] != batch * num_per_prompt:
            raise ValueError(f"prompt embeddings must have one row per input ({batch}), got {text[0].shape[0] // num_per_prompt} "
                             f"and {cond_text[0].shape[0] // num_per_prompt}")
        rows = [items[i] for i in range(batch) for _ in range(num_per_prompt)]
        if isinstance(generator, list) and len(generator) != len(rows):
            raise ValueError(f"got {len(generator)} generators for {len(rows)} outputs: pass one, or one per output")
        groups = {}
        for r, item in enumerate(rows):
            groups.setdefault(item.key, []).append(r)
        if latents is not None and len(groups) > 1:
            raise ValueError("latents can only be passed when all inputs have the same length in model space")

        outputs, seconds = [None] * len(rows), [item.seconds for item in rows]
        del items  # each group's inputs are handed to sample_group, which drops them once it has its own copy
        for ids in groups.values():
            pick = lambda x: None if x is None else x[ids]  # noqa: E731
            state = dict(zip(TEXT_INPUTS, [pick(x) for x in text]))
            group = [rows[r] for r in ids]
            for r in ids:
                rows[r] = None
            result = self.sample_group(
                group, state, [pick(x) for x in cond_text],
                [generator[r] for r in ids] if isinstance(generator, list) else generator, latents, t_c,
                num_inference_steps, sigmas, callback_on_step_end, callback_on_step_end_tensor_inputs, device,
            )
            release_free_memory()  # the sampler's per-pass buffers, before decoding (see utils/heap.py)
            for r, out in zip(ids, self.decode(result, output_type, [seconds[r] for r in ids])):
                outputs[r] = out
        return self.make_output(outputs, output_type, return_dict)

    def sample_group(self, items, state, cond_text, generator, latents, t_c, num_inference_steps, sigmas,
                     callback_on_step_end, callback_on_step_end_tensor_inputs, device) -> torch.Tensor:
        """Sample the generated modality for conditioning inputs of one length; `state` holds their text."""
        gen, cond = self.generated, self.conditioning
        family = self.family(gen)
        backbones = {m: self.family(m).backbone for m in (gen, cond)}
        dtype = family.sampling_dtype  # of the noise and the integrated latents; each backbone gets its own dtype
        num_video_frames, num_audio_frames, batch = items[0].num_video_frames, items[0].num_audio_frames, len(items)
        windows = self.windows_for(num_video_frames, num_audio_frames)
        padded = extent(windows)  # both signals are sampled over the windows' extent, then cut back
        # The conditioning input is noised once, with noise from `generator`, and then held fixed.
        signal = torch.cat([item.signal for item in items]).to(device=device, dtype=dtype)
        items.clear()  # the caller's list: its inputs are no longer held here (memory grows with the input's length)
        signal = self.pad_frames(signal, cond, getattr(padded, cond).stop, self.conditioning_padding)
        shape = family.latent_shape(batch, num_audio_frames if gen == "audio" else num_video_frames)
        if family.noise_first:  # the generated backbone's own pipeline's draw first (see `BackboneFamily.noise_first`)
            latents = self.prepare_latents(shape, generator, latents, device, dtype)
            noise = randn_tensor(signal.shape, generator=generator, device=device, dtype=dtype)
        else:
            noise = randn_tensor(signal.shape, generator=generator, device=device, dtype=dtype)
            latents = self.prepare_latents(shape, generator, latents, device, dtype)
        noisy_signal = noisy_sample(signal, noise, t_c).to(backbones[cond].dtype)
        del signal, noise  # only the noised input is read from here on (memory grows with the input's length)
        state["latents"] = self.pad_frames(latents, gen, getattr(padded, gen).stop, self.noise_filler(generator))

        # Blocks before the first fusion point see the same input at every step: each pass's rows run them
        # once, at the first step, while the cached states fit PREFIX_CACHE_BYTES (the first pass's always: it is
        # the size of one forward's activations); the passes past it recompute theirs at every step, so memory
        # stays flat in the input's length. With static conditioning features
        # (an adapter that does not reinject into the conditioning backbone) that holds for its states at every
        # fusion point: the conditioning backbone then runs once per input, not once per step.
        prefixes, cached_bytes = {}, 0
        prefix_of = embed_prefix if self.fusion_adapter.reinjects(cond) else conditioning_states

        def velocity(x, t, rows, state):
            nonlocal cached_bytes
            prefix = prefixes.get(rows)
            if prefix is None:
                samples = [b for _, b in rows]
                x_cond = torch.cat([take(noisy_signal[b:b + 1], cond, windows[k]) for k, b in rows])
                text = [None if c is None else c[samples] for c in cond_text]
                prefix = prefix_of(backbones[cond], self.fusion_adapter, cond, x_cond, t_c, *text)
                size = prefix.nbytes()
                if not prefixes or cached_bytes + size <= PREFIX_CACHE_BYTES:  # the first pass's always
                    prefixes[rows], cached_bytes = prefix, cached_bytes + size
            (x, t, text, mask), *unconditional = self.guidance_inputs(x.to(backbones[gen].dtype), t, rows, state)
            inputs = {gen: x, cond: prefix}
            out = joint_forward(
                backbones["audio"], backbones["video"], self.fusion_adapter,
                audio=inputs["audio"], video=inputs["video"],
                audio_timestep=t if gen == "audio" else t_c, video_timestep=t if gen == "video" else t_c,
                audio_text=text if gen == "audio" else None, video_text=text if gen == "video" else None,
                audio_text_mask=mask if gen == "audio" else None, video_text_mask=mask if gen == "video" else None,
                return_audio=gen == "audio", return_video=gen == "video", unfused_rows=x.shape[0] - len(rows),
            )
            # an unconditional branch whose text cannot share the batch runs the generated backbone on its own
            return self.guide(torch.cat([getattr(out, gen), *(backbones[gen](*u).sample for u in unconditional)]))

        # Tokens per (window, sample) row: the joint forward's two backbones, and the generated one again
        # for the unconditional branch.
        branches = 2 if self.do_classifier_free_guidance else 1
        tokens = branches * self.num_tokens(gen, windows[0].length(gen)) + self.num_tokens(cond, windows[0].length(cond))
        result = self.denoise(state, windows, velocity, num_inference_steps, sigmas, callback_on_step_end,
                              callback_on_step_end_tensor_inputs, tokens_per_row=tokens)
        return result.narrow(AXIS[gen], 0, shape[AXIS[gen]])

    def conditioning_padding(self, signal: torch.Tensor, shape) -> torch.Tensor:
        """What the conditioning input holds past its end (the windows' extent can reach past it by less than a
        video frame): the last video frame held still, or silence."""
        return self.family(self.conditioning).conditioning_padding(signal, shape)
