"""Fusion Blocks: the only trained part of AV-Link, linking a frozen audio and a frozen video DiT.

One Fusion Block (paper §3.3) takes the output activations of an audio block `x_a (B, La, Da)` and
a video block `x_v (B, Lv, Dv)`, projects both to a common width D, runs one multi-head
self-attention over their concatenation with *time-aligned* 1D RoPE, and maps the result back to
each modality's width with a per-modality MLP. Both outputs are added back into their backbones
(symmetric feature reinjection). adaLN-Zero with separate audio and video parameter sets, each
conditioned on both flow times (t_a, t_v), modulates the two streams; every gate starts at zero,
so an untrained adapter leaves both backbones exactly unchanged.

Time-aligned RoPE: every token is rotated by its time in seconds times `time_rate` (the paper's
tau(n): video frame n -> n, audio token n -> n * eta_v / eta_a, i.e. seconds * eta_v), so an audio
and a video token at the same instant share a rotation and attention scores depend only on how
far apart in time two tokens are.
"""

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.embeddings import Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .attention import AVLinkAttention, FeedForward
from .backbone import checkpointed
from .backbone_views import as_backbone
from .casting import compute_dtype
from .dit_block import modulate
from .fusion_variants import ConcatToText, DirectAlignment, GlobalConditioning, SyncFlowAdaptor, instants
from .presets import PresetMixin
from .rope import rope_1d


FUSION_TYPES = ("fusion_blocks", "cross_attention", "direct", "concat_text", "cmc_pe", "syncflow")
REINJECT = ("both", "audio", "video")
ROPE_POSITIONS = ("time", "index")
CONDITIONING_TIMES = ("fixed", "uniform")


def check_variant(fusion_type: str, reinject: str, rope_positions: str, conditioning_time: str,
                  text_tokens_into: str | None = None, global_into: str | None = None) -> None:
    """ValueError for an ablation setting outside its choices or a combination that cannot link two backbones."""
    for name, value, allowed in (("fusion_type", fusion_type, FUSION_TYPES), ("reinject", reinject, REINJECT),
                                 ("rope_positions", rope_positions, ROPE_POSITIONS),
                                 ("conditioning_time", conditioning_time, CONDITIONING_TIMES)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    if fusion_type == "syncflow" and reinject != "audio":
        raise ValueError('fusion_type "syncflow" conditions the audio tower on the video only: set reinject="audio"')
    if text_tokens_into is not None:
        if text_tokens_into not in ("audio", "video") or reinject not in ("both", text_tokens_into):
            raise ValueError(f"text_tokens_into must be a modality the adapter reinjects into, got {text_tokens_into!r}")
        if fusion_type in ("concat_text", "syncflow"):
            raise ValueError(f'fusion_type "{fusion_type}" already extends a backbone\'s text: text_tokens_into adds to the others')
    if global_into is not None and (global_into not in ("audio", "video") or reinject not in ("both", global_into)):
        raise ValueError(f"global_into must be a modality the adapter reinjects into, got {global_into!r}")
    if fusion_type == "concat_text" and reinject == "both":
        raise ValueError('fusion_type "concat_text" appends to one backbone\'s text: set reinject to the generated '
                         'modality ("audio" for V2A, "video" for A2V)')


def interleaved_layers(num_blocks: int, num_layers: int) -> list[int]:
    """Evenly spread fusion points: block k sits after backbone block floor(k * L / N).

    For 8 blocks in 24 layers this is 0, 3, ..., 21 (the paper's 3k); for a 12-layer audio model
    beside a 24-layer video model it gives the paper's floor(3k/2) pairing.
    """
    return [k * num_layers // num_blocks for k in range(num_blocks)]


def time_bias_slopes(num_heads: int) -> torch.Tensor:
    """Initial per-head slopes of the time-distance bias, in logits per RoPE position (per video token
    step): 1, then geometrically down to 2^-8 * (H - 1) / H, ALiBi's spread starting at one step. The
    first head attends mostly within a frame or two, the last almost evenly over a whole clip."""
    return torch.pow(2.0, -8.0 * torch.arange(num_heads, dtype=torch.float32) / num_heads)


class AVLinkFusionBlock(nn.Module):
    def __init__(self, audio_dim: int, video_dim: int, dim: int, num_heads: int, mlp_dim: int, qk_norm: bool, eps: float,
                 time_bias: bool = False, cross_modal_only: bool = False):
        super().__init__()
        self.dim = dim
        # The paper's "symmetric cross-attention" ablation: the same attention, with each modality's tokens
        # attending only to the other modality's (audio -> video and video -> audio), never to their own.
        self.cross_modal_only = cross_modal_only
        # Learned per-head slopes (log2) of a -slope * |time distance| logit bias: see AVLinkFusionAdapter.
        self.time_bias_log2_slope = nn.Parameter(torch.log2(time_bias_slopes(num_heads))) if time_bias else None
        self.audio_in = nn.Linear(audio_dim, dim)
        self.video_in = nn.Linear(video_dim, dim)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn = AVLinkAttention(dim, num_heads, qk_norm=qk_norm, eps=eps)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.audio_mlp = FeedForward(dim, mlp_dim, audio_dim)
        self.video_mlp = FeedForward(dim, mlp_dim, video_dim)
        # Per-block adaLN-Zero offsets (shift1, scale1, gate1, shift2, scale2 on D; gate2 on the
        # modality width), added to the adapter's shared (t_a, t_v) projection: adaLN-single as in
        # PixArt-alpha / Wan, which is what keeps a block at the paper's 23.25M parameters.
        self.audio_modulation = nn.Parameter(torch.zeros(5 * dim + audio_dim))
        self.video_modulation = nn.Parameter(torch.zeros(5 * dim + video_dim))
        # The attention gates (gate1) act inside the adapter's own width, so they can start open: only the
        # reinjection gates (gate2) must start at zero for an untrained adapter to leave the backbones
        # unchanged. With gate1 at zero too, the cross-modal path is a product of two closed gates and
        # learns very slowly: on SynthHits v2 the RoPE-only adapter still had gate1 ~ 0.04 after 4750
        # steps and its audio ignored the video's timing entirely (docs/synthhits.md).
        with torch.no_grad():
            self.audio_modulation[2 * dim:3 * dim] = 1.0
            self.video_modulation[2 * dim:3 * dim] = 1.0

    def _split(self, mod: torch.Tensor):
        d = self.dim
        return mod.split([d, d, d, d, d, mod.shape[-1] - 5 * d], dim=-1)

    def attention_bias(self, time_distance: torch.Tensor | None, num_audio: int = 0,
                       num_tokens: int = 0) -> torch.Tensor | None:
        """(H or 1, L, L) logit bias: the time bias from the (L, L) token time distances, and -inf between tokens of
        the same modality for cross-modal-only attention (the first `num_audio` of `num_tokens` are audio); or None."""
        bias = None
        if self.time_bias_log2_slope is not None and time_distance is not None:
            bias = -torch.exp2(self.time_bias_log2_slope)[:, None, None] * time_distance
        if self.cross_modal_only:
            is_audio = torch.arange(num_tokens, device=self.audio_modulation.device) < num_audio
            same = is_audio[:, None] == is_audio[None, :]
            blocked = torch.zeros(1, num_tokens, num_tokens, device=same.device).masked_fill(same, float("-inf"))
            bias = blocked if bias is None else bias + blocked
        return bias

    def forward(self, audio, video, audio_mod, video_mod, rope, return_audio: bool = True, return_video: bool = True,
                time_distance: torch.Tensor | None = None):
        # return_* = False skips a side's MLP when nothing downstream reads it (the last block in V2A/A2V).
        sa1, ca1, ga1, sa2, ca2, ga2 = self._split(audio_mod + self.audio_modulation)
        sv1, cv1, gv1, sv2, cv2, gv2 = self._split(video_mod + self.video_modulation)
        a, v = self.audio_in(audio), self.video_in(video)
        la = a.shape[1]
        joint = torch.cat([modulate(self.norm1(a), sa1, ca1), modulate(self.norm1(v), sv1, cv1)], dim=1)
        bias = self.attention_bias(time_distance, la, joint.shape[1])
        if return_audio and return_video:
            joint = self.attn(joint, rotary_emb=rope, attention_bias=bias)
            a = a + ga1[:, None] * joint[:, :la]
            v = v + gv1[:, None] * joint[:, la:]
        else:  # only one side is read afterwards: attend from its tokens alone, to all tokens
            rows = slice(None, la) if return_audio else slice(la, None)
            out = self.attn(joint[:, rows], encoder_hidden_states=joint, rotary_emb=(rope[0][rows], rope[1][rows]),
                            key_rotary_emb=rope, attention_bias=None if bias is None else bias[:, rows])
            if return_audio:
                a = a + ga1[:, None] * out
            else:
                v = v + gv1[:, None] * out
        if return_audio:
            audio = audio + ga2[:, None] * self.audio_mlp(modulate(self.norm2(a), sa2, ca2))
        if return_video:
            video = video + gv2[:, None] * self.video_mlp(modulate(self.norm2(v), sv2, cv2))
        return audio, video


class AVLinkFusionAdapter(PresetMixin, ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    """N Fusion Blocks and their placement between two backbones.

    Paper scale (the defaults): 8 blocks between two 24-block, width-1024 backbones; per block
    audio/video input projections 2 x 1.05M, attention with QK-norm 4.20M, audio/video MLPs
    (1024 -> 4096 -> 1024) 2 x 8.39M, adaLN offsets 2 x 6K: 23.10M per block (the paper quotes
    23.25M), 184.8M for 8; plus the shared audio and video (t_a, t_v) -> modulation projections
    2 x 1.71M: 188.2M in all (paper: 186M).

    Args:
        audio_dim, video_dim: widths of the audio and video backbones.
        hidden_size, num_attention_heads, mlp_dim: the common width D, heads and MLP width.
        num_audio_layers, num_video_layers: depths of the backbones (to validate the placement).
        num_blocks: number of Fusion Blocks when the placement is not given explicitly.
        video_layers, audio_layers: the placement, one pair per block: block k fuses the outputs of
            video block `video_layers[k]` and audio block `audio_layers[k]` (0-based). Both lists must
            be non-decreasing. Default: `num_blocks` spread evenly through each backbone.
        time_rate: RoPE positions per second (the video token rate eta_v, 6 in the paper).
        time_embed_dim: hidden width of the (t_a, t_v) -> modulation MLPs.
        time_bias: add a learned, per-head `-slope * |time distance|` bias (in RoPE positions, i.e. seconds
            x `time_rate`) to the Fusion Blocks' attention logits, slopes starting at `time_bias_slopes`.
            Not in the paper (off by default, so the paper's block and older checkpoints are unchanged).
            RoPE alone lets attention *prefer* tokens at the same instant only once q/k grow large components
            in RoPE's fastest pair; the bias makes some heads local from step 0. On SynthHits v2 it did not by
            itself make a tiny adapter time sounds from the motion (training the generated modality at lower
            t did: docs/synthhits.md); whether it is still needed with that schedule is not measured.

    The paper's ablations (Table 2; docs/ablations.md) are config, not other classes:
        fusion_type: "fusion_blocks" (the method), "cross_attention" (the same blocks, each modality attending only
            to the other), "direct" (direct alignment: per fusion point a zero-initialised linear map of the other
            modality's time-aligned features, added; no attention, no adaLN) or "concat_text" (the conditioning
            features after its last fusion point, one token per instant, projected and appended to the generated
            backbone's text tokens; `reinject` names the generated modality). See `fusion_variants`.
        reinject: "both" (symmetric reinjection, the method) or "audio" / "video": only that backbone takes the
            adapter's outputs; the other one's activations are left as they are ("static conditioning features",
            the paper's "w/o symm. reinj."). Then the conditioning backbone's features do not depend on the sampling
            step, and the pipelines run it once per input, not once per step (`joint.conditioning_states`).
        rope_positions: "time" (each token at its time in seconds x `time_rate`, the method) or "index" (each
            modality's own token index along time: audio token n -> n, video frame m -> m; not aligned).
        conditioning_time: how training draws the conditioning modality's flow time: "fixed" (the paper's 0.96 for
            V2A, 0.8 for A2V) or "uniform" (U(0, 1) per sample). Sampling uses the pipeline's
            `conditioning_timestep` either way (0.96 / 0.8 by default), a time inside the uniform range.

    The related systems' links, for joint text-to-audio+video generation (docs/joint.md):
        fusion_type "cmc_pe": Ishii et al.'s CMC-PE, temporally local features of the other modality through an MLP
            connector, added at each fusion point (audio into video as a positional encoding, and video into audio).
        fusion_type "syncflow" (with reinject="audio"): SyncFlow's modality adaptor, per linked layer, whose output
            and the audio flow-time embedding the audio backbone's cross-attention reads beside its text.
        timestep_gamma: Ishii et al.'s timestep adjustment for joint generation (`schedulers.adjusted_times`): a
            global time t gives the audio and video their own local times; 0 (the default) is t_a = t_v.

    Not in the papers: `text_tokens_into="audio"` (V2A; "video" for A2V) adds, beside the links, concat-to-text's
    tokens taken from the other backbone's prefix (its features after its first fusion point, before any fusion, so
    they are known before the generated backbone's first block and are static in sampling). On SynthHits v2 the
    concat-to-text ablation rendered the sound's kind from the picture better than the Fusion Blocks did; this
    puts the two together (an experiment; not the identity when untrained).
    `global_into="audio"` (V2A; "video" for A2V) adds a clip-level pathway (`fusion_variants.GlobalConditioning`,
    MMAudio's global conditioning): the other backbone's features at the adapter's first point (the same prefix),
    averaged over every token and through a zero-initialised MLP, are added to the generated backbone's flow-time
    embedding, so every block's adaLN and its output layer read them. The identity when untrained; on av-link's
    backbones and the Wan / LongCat views (each backbone's `add_to_time_embedding`).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["AVLinkFusionBlock"]
    _repeated_blocks = ["AVLinkFusionBlock"]
    # Layerwise casting leaves the (t_a, t_v) modulation MLPs and the norms in the compute dtype.
    _skip_layerwise_casting_patterns = ["time_mlp", "norm"]

    @register_to_config
    def __init__(
        self,
        audio_dim: int = 1024,
        video_dim: int = 1024,
        hidden_size: int = 1024,
        num_attention_heads: int = 16,
        mlp_dim: int = 4096,
        num_audio_layers: int = 24,
        num_video_layers: int = 24,
        num_blocks: int = 8,
        video_layers: list[int] | None = None,
        audio_layers: list[int] | None = None,
        time_rate: float = 6.0,
        time_embed_dim: int = 256,
        qk_norm: bool = True,
        eps: float = 1e-6,
        rope_theta: float = 10000.0,
        time_bias: bool = False,
        fusion_type: str = "fusion_blocks",
        reinject: str = "both",
        rope_positions: str = "time",
        conditioning_time: str = "fixed",
        timestep_gamma: float = 0.0,
        text_tokens_into: str | None = None,
        global_into: str | None = None,
    ):
        super().__init__()
        check_variant(fusion_type, reinject, rope_positions, conditioning_time, text_tokens_into, global_into)
        for name, value in dict(audio_dim=audio_dim, video_dim=video_dim, hidden_size=hidden_size, mlp_dim=mlp_dim,
                                num_audio_layers=num_audio_layers, num_video_layers=num_video_layers,
                                time_embed_dim=time_embed_dim).items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if num_attention_heads < 1 or hidden_size % num_attention_heads or (hidden_size // num_attention_heads) % 2:
            raise ValueError(f"hidden_size {hidden_size} must split into num_attention_heads={num_attention_heads} heads of even width")
        if time_rate <= 0:
            raise ValueError(f"time_rate must be positive, got {time_rate}")
        if (video_layers is None) != (audio_layers is None):
            raise ValueError("give both video_layers and audio_layers, or neither (then num_blocks are spread evenly)")
        if video_layers is None:
            if num_blocks < 1:
                raise ValueError(f"num_blocks must be positive, got {num_blocks}")
            video_layers = interleaved_layers(num_blocks, num_video_layers)
            audio_layers = interleaved_layers(num_blocks, num_audio_layers)
        video_layers, audio_layers = [int(i) for i in video_layers], [int(i) for i in audio_layers]
        if not video_layers:
            raise ValueError("video_layers/audio_layers is empty: the adapter needs at least one fusion point")
        if len(video_layers) != len(audio_layers):
            raise ValueError(f"video_layers has {len(video_layers)} entries but audio_layers has {len(audio_layers)}: one pair per block")
        for name, layers, depth in (("video_layers", video_layers, num_video_layers), ("audio_layers", audio_layers, num_audio_layers)):
            bad = [i for i in layers if not 0 <= i < depth]
            if bad:
                raise ValueError(f"{name} index {bad[0]} is out of range for a backbone with {depth} blocks")
            if any(b < a for a, b in zip(layers, layers[1:])):
                raise ValueError(f"{name} must be non-decreasing, got {layers}")
        self.register_to_config(video_layers=video_layers, audio_layers=audio_layers, num_blocks=len(video_layers))

        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0, scale=1000)
        self.blocks, self.direct, self.adaptors, self.concat = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), None
        if fusion_type in ("fusion_blocks", "cross_attention"):
            self.audio_time_mlp = self._time_mlp(time_embed_dim, 5 * hidden_size + audio_dim)
            self.video_time_mlp = self._time_mlp(time_embed_dim, 5 * hidden_size + video_dim)
            self.blocks.extend(
                AVLinkFusionBlock(audio_dim, video_dim, hidden_size, num_attention_heads, mlp_dim, qk_norm, eps, time_bias,
                                  cross_modal_only=fusion_type == "cross_attention")
                for _ in video_layers
            )
        elif fusion_type in ("direct", "cmc_pe"):
            self.direct.extend(DirectAlignment(audio_dim, video_dim, mlp=fusion_type == "cmc_pe", eps=eps) for _ in video_layers)
        elif fusion_type == "syncflow":
            heads = math.gcd(video_dim, num_attention_heads)  # the adaptor attends at the video's width
            self.adaptors.extend(SyncFlowAdaptor(video_dim, audio_dim, heads, eps) for _ in video_layers)
        else:  # concat_text: the conditioning modality is the one not reinjected
            conditioning_dim, generated_dim = (video_dim, audio_dim) if reinject == "audio" else (audio_dim, video_dim)
            self.concat = ConcatToText(conditioning_dim, generated_dim, eps)
        if text_tokens_into is not None:  # beside the links above: the other modality's prefix as extra text tokens
            source_dim, target_dim = (video_dim, audio_dim) if text_tokens_into == "audio" else (audio_dim, video_dim)
            self.concat = ConcatToText(source_dim, target_dim, eps)
        self.global_conditioning = None
        if global_into is not None:  # the other modality's prefix, pooled, into this one's adaLN conditioning
            source_dim, target_dim = (video_dim, audio_dim) if global_into == "audio" else (audio_dim, video_dim)
            self.global_conditioning = GlobalConditioning(source_dim, target_dim, eps)
        self.gradient_checkpointing = False

    @classmethod
    def from_trained(cls, folder, **overrides) -> "AVLinkFusionAdapter":
        """The trained adapter in `folder`, with config `overrides` that add modules (e.g. `text_tokens_into`): the
        trained weights are kept and the added modules start fresh. An override that would drop or reshape a trained
        weight fails."""
        trained = cls.from_pretrained(folder)
        if not overrides:
            return trained
        adapter = cls(**{**{k: v for k, v in trained.config.items() if not k.startswith("_")}, **overrides})
        _, unexpected = adapter.load_state_dict(trained.state_dict(), strict=False)  # shape changes raise here
        if unexpected:
            raise ValueError(f"the overrides {overrides} would drop trained weights ({', '.join(unexpected[:3])}, ...)")
        return adapter

    @staticmethod
    def _time_mlp(hidden: int, out: int) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(512, hidden), nn.SiLU(), nn.Linear(hidden, out))
        nn.init.zeros_(mlp[-1].weight)
        nn.init.zeros_(mlp[-1].bias)
        return mlp

    @property
    def placement(self) -> list[tuple[int, int]]:
        """(video block, audio block) after which each Fusion Block runs."""
        return list(zip(self.config.video_layers, self.config.audio_layers))

    def freeze_time_bias(self) -> int:
        """Keep the time-bias slopes at their current values in training; returns how many were frozen.

        Why a trainer would: CPU SDPA has no fused kernel that returns a gradient for a logit bias, so learned
        slopes send every Fusion Block attention through the math path (about a quarter of a SynthHits v2 V2A
        step); frozen, the bias is a constant mask the flash kernel takes. GPU kernels have no such cost."""
        if not self.config.time_bias:
            raise ValueError("this adapter has no time bias to freeze (time_bias=False)")
        slopes = [block.time_bias_log2_slope for block in self.blocks]
        for slope in slopes:
            slope.requires_grad_(False)
        return len(slopes)

    def check_backbones(self, audio_transformer, video_transformer) -> None:
        """Raise a ValueError if the backbones' widths or depths don't match this adapter's config."""
        c = self.config
        for side, model, dim, depth in (("audio", audio_transformer, c.audio_dim, c.num_audio_layers),
                                        ("video", video_transformer, c.video_dim, c.num_video_layers)):
            model = as_backbone(model)  # av-link's own backbones as they are, diffusers' through their view
            if model.hidden_size != dim or len(model.blocks) != depth:
                raise ValueError(
                    f"the {side} backbone has width {model.hidden_size} and {len(model.blocks)} blocks, "
                    f"but the fusion adapter expects {side}_dim={dim} and num_{side}_layers={depth}"
                )

    def reinjects(self, modality: str) -> bool:
        """Whether the adapter's outputs go back into `modality`'s backbone (see `reinject`)."""
        return self.config.reinject in ("both", modality)

    def rope_positions(self, audio_seconds: torch.Tensor, video_seconds: torch.Tensor) -> torch.Tensor:
        """RoPE positions of the concatenated [audio, video] tokens: seconds x time_rate, or with
        `rope_positions="index"` each modality's own token index along time (not aligned across modalities)."""
        if self.config.rope_positions == "index":
            return torch.cat([instants(audio_seconds)[1], instants(video_seconds)[1]]).double()
        return torch.cat([audio_seconds, video_seconds]).double() * self.config.time_rate

    def time_rope(self, audio_seconds: torch.Tensor, video_seconds: torch.Tensor):
        """cos/sin tables for the concatenated [audio, video] tokens, from their times in seconds."""
        positions = self.rope_positions(audio_seconds, video_seconds)
        return rope_1d(positions, self.config.hidden_size // self.config.num_attention_heads, self.config.rope_theta)

    def time_distance(self, audio_seconds: torch.Tensor, video_seconds: torch.Tensor) -> torch.Tensor | None:
        """(L, L) |difference| of the concatenated [audio, video] tokens' RoPE positions (seconds x time_rate, or the
        indices), for the time bias; None when the adapter has none."""
        if not self.config.time_bias:
            return None
        positions = self.rope_positions(audio_seconds, video_seconds).float()
        return (positions[:, None] - positions[None, :]).abs()

    def modulation(self, audio_timestep: torch.Tensor, video_timestep: torch.Tensor):
        """Shared adaLN projections of both flow times, one per modality: (B, 5D + D_a), (B, 5D + D_v)."""
        dtype = compute_dtype(self.audio_time_mlp[0])
        both = torch.cat([self.time_proj(audio_timestep), self.time_proj(video_timestep)], dim=-1).to(dtype)
        return self.audio_time_mlp(both), self.video_time_mlp(both)

    def fuse(self, index: int, audio, video, audio_mod, video_mod, rope, return_audio: bool = True, return_video: bool = True,
             time_distance: torch.Tensor | None = None):
        """Run Fusion Block `index`: returns the reinjected (audio, video) backbone activations; a side
        with `return_* = False` comes back unfused (its MLP is skipped). `time_distance` comes from
        `self.time_distance` (needed when the adapter has a time bias)."""
        block = self.blocks[index]
        if self.config.time_bias and time_distance is None:
            raise ValueError("this adapter has a time bias: pass time_distance=adapter.time_distance(audio_seconds, video_seconds)")
        return checkpointed(self, block, audio, video, audio_mod, video_mod, rope, return_audio, return_video, time_distance)

