"""SynthHits: a tiny synthetic audio-visual dataset of visible, audible impacts.

Each clip shows an object bouncing on a surface. Impacts happen at random, irregular times;
at each impact the object touches the surface, the surface flashes for one frame period and a
percussive sound starts at exactly that time. Between impacts the object flies along a
parabola, so the impact instant is predictable from the motion to sub-frame precision (the
flash strength also encodes the sub-frame phase: 1.0 when a frame lands exactly on the
impact, 0.5 when it lands just under one frame period later).

Four kinds differ in both look and sound:

========  ==========================  =====================================================
kind      look                        sound
========  ==========================  =====================================================
metal     red ball, grey metal plate  inharmonic high partials, long ring (~0.5 s)
wood      yellow block, brown table   short mid-frequency knock (~30 ms) + click
glass     cyan crystal, teal pane     very high, short tinkle (~80 ms)
drum      green ball, tan drum head   low thump whose pitch drops (~150 ms)
========  ==========================  =====================================================

Layout (used by :mod:`av_link.metrics.event_time`): the surface fills the bottom rows given by
:func:`surface_rows`; the object never enters them.

``make_synthetic_dataset`` writes ``<name>.mp4`` (video only, lossless H.264 4:4:4),
``<name>.wav`` (16-bit PCM) and ``metadata.jsonl``. The audio is not muxed into the mp4 on
purpose: training code reads the two streams separately and a lossy audio codec would blur the
onsets this dataset exists to test.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ..utils.media_io import write_video, write_wav
from ..utils.synthhits_layout import surface_rows

__all__ = [
    "SYNTHHITS_KINDS",
    "SynthHitsConfig",
    "generate_clip",
    "make_synthetic_dataset",
    "surface_rows",
]

# Look and captions per kind. Colours are jittered a little per clip; surfaces are kept at
# mid brightness so the flash (a blend towards white) always has head-room to show.
_KINDS: Dict[str, Dict[str, Any]] = {
    "metal": dict(
        shape="disk", object_rgb=(220, 40, 40), surface_rgb=(120, 128, 140),
        audio_caption="a metallic clang", video_caption="a red ball bouncing on a metal plate",
    ),
    "wood": dict(
        shape="square", object_rgb=(235, 205, 50), surface_rgb=(125, 78, 38),
        audio_caption="a wooden knock", video_caption="a yellow block bouncing on a wooden table",
    ),
    "glass": dict(
        shape="diamond", object_rgb=(60, 220, 235), surface_rgb=(55, 110, 120),
        audio_caption="a glass tinkle", video_caption="a cyan crystal bouncing on a glass pane",
    ),
    "drum": dict(
        shape="disk", object_rgb=(50, 200, 70), surface_rgb=(150, 118, 85),
        audio_caption="a low drum thump", video_caption="a green ball bouncing on a drum",
    ),
}
SYNTHHITS_KINDS: Tuple[str, ...] = tuple(_KINDS)

_BACKGROUND_RGB = np.array([18, 18, 28], dtype=np.float64)
_FLASH_GAIN = 0.8  # fraction of the way to white the surface goes at full flash strength


@dataclass
class SynthHitsConfig:
    """Options of a SynthHits clip.

    The defaults (32x32 px, 8 fps, 16 kHz, 2 s, 1-3 impacts at least 0.35 s apart) keep a clip
    at 16 frames and 32k samples, small enough to train tiny V2A/A2V models on a 2-core CPU,
    while 0.35 s (2.8 frames) guarantees a flash-free frame between consecutive impacts.
    """

    width: int = 32
    height: int = 32
    fps: float = 8.0
    sample_rate: int = 16000
    duration: float = 2.0
    min_events: int = 1
    max_events: int = 3
    min_gap: float = 0.35  # seconds between consecutive impacts
    edge_margin: float = 0.15  # no impact closer than this to the clip start or end
    kinds: Tuple[str, ...] = SYNTHHITS_KINDS
    noise_level: float = 0.0  # std of white background noise added to the audio
    seed: int = 0

    def __post_init__(self):
        self.kinds = tuple(self.kinds)
        for name in ("width", "height", "sample_rate", "min_events", "max_events", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"SynthHitsConfig.{name} must be an integer, got {value!r}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"width and height must be >= 8 px, got {self.width}x{self.height}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.sample_rate < 4000:
            raise ValueError(f"sample_rate must be >= 4000 Hz, got {self.sample_rate}")
        if not self.duration > 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.num_frames < 2:
            raise ValueError(f"duration * fps must give at least 2 frames, got {self.num_frames}")
        if self.min_events < 0 or self.max_events < self.min_events:
            raise ValueError(
                f"need 0 <= min_events <= max_events, got {self.min_events}, {self.max_events}")
        if not self.min_gap > 0:
            raise ValueError(f"min_gap must be positive, got {self.min_gap}")
        if self.edge_margin < 0:
            raise ValueError(f"edge_margin must be >= 0, got {self.edge_margin}")
        if self.noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {self.noise_level}")
        if not self.kinds:
            raise ValueError("kinds must not be empty")
        unknown = [k for k in self.kinds if k not in _KINDS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; choose from {SYNTHHITS_KINDS}")
        lo, hi = self.event_window
        if self.max_events > 0:
            need = (self.max_events - 1) * self.min_gap
            if hi < lo or hi - lo < need:
                raise ValueError(
                    f"duration {self.duration}s is too short for {self.max_events} impacts "
                    f"{self.min_gap}s apart with edge_margin {self.edge_margin}s: impacts must "
                    f"fall in [{lo:.3f}, {hi:.3f}] s, which needs a span of {need:.3f} s")

    @property
    def num_frames(self) -> int:
        return int(round(self.duration * self.fps))

    @property
    def num_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def event_window(self) -> Tuple[float, float]:
        """Range of impact times: away from the edges, and early enough that the frame showing
        the flash (the first frame at or after the impact) exists."""
        last_frame_time = (self.num_frames - 1) / self.fps
        return self.edge_margin, min(self.duration - self.edge_margin, last_frame_time)


def _sample_event_times(cfg: SynthHitsConfig, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(cfg.min_events, cfg.max_events + 1))
    if n == 0:
        return np.zeros(0)
    lo, hi = cfg.event_window
    # Uniform over all valid configurations: sorted uniforms in the slack, then add the gaps.
    slack = (hi - lo) - (n - 1) * cfg.min_gap
    return lo + np.sort(rng.uniform(0.0, slack, size=n)) + cfg.min_gap * np.arange(n)


def _jitter(rgb, rng: np.random.Generator, amount: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def _render_frames(cfg: SynthHitsConfig, kind: str, events: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    spec = _KINDS[kind]
    H, W, F = cfg.height, cfg.width, cfg.num_frames
    top, _ = surface_rows(H)
    radius = rng.uniform(0.09, 0.12) * min(H, W)
    cx = rng.uniform(radius + 1.0, W - radius - 1.0)
    obj_rgb, surf_rgb = _jitter(spec["object_rgb"], rng), _jitter(spec["surface_rgb"], rng)
    max_height = max(top - 2.0 * radius - 1.0, 1.0)  # highest lift of the object's bottom edge

    # Virtual impacts outside the clip so the motion is a parabola everywhere, and the object
    # touches the surface only at real impacts.
    first = events[0] if len(events) else cfg.duration / 2
    last = events[-1] if len(events) else cfg.duration / 2
    before = min(first - cfg.min_gap, 0.0) - rng.uniform(0.1, 0.5)
    after = max(last + cfg.min_gap, cfg.duration) + rng.uniform(0.1, 0.5)
    knots = np.concatenate([[before], events, [after]])
    gaps = np.diff(knots)
    apex = max_height * np.clip(gaps / 0.8, 0.35, 1.0)  # longer flights go higher

    t = np.arange(F) / cfg.fps
    seg = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(gaps) - 1)
    u = (t - knots[seg]) / gaps[seg]
    lift = 4.0 * apex[seg] * u * (1.0 - u)  # 0 at both impacts of the segment
    cy = top - radius - lift  # object centre row (sub-pixel)

    # Flash: only the first frame at or after an impact, strength 1 -> 0.5 over one period.
    flash = np.zeros(F)
    for te in events:
        k = int(math.ceil(te * cfg.fps - 1e-9))
        if k < F:
            flash[k] = max(flash[k], 1.0 - 0.5 * (k / cfg.fps - te) * cfg.fps)

    ys = np.arange(H)[None, :, None] + 0.5  # pixel centres
    xs = np.arange(W)[None, None, :] + 0.5
    dx, dy = xs - cx, ys - cy[:, None, None]
    if spec["shape"] == "disk":
        dist = np.sqrt(dx ** 2 + dy ** 2)
    elif spec["shape"] == "square":
        dist = np.maximum(np.abs(dx), np.abs(dy))
    else:  # diamond, scaled so its corners reach a bit further than the disk
        dist = (np.abs(dx) + np.abs(dy)) / 1.3
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]  # anti-aliased edge

    surf = surf_rgb + (_FLASH_GAIN * flash)[:, None] * (255.0 - surf_rgb)  # (F, 3)
    frames = np.broadcast_to(_BACKGROUND_RGB, (F, H, W, 3)).copy()
    frames[:, top:] = surf[:, None, None, :]
    frames = frames * (1.0 - alpha) + obj_rgb * alpha
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def _impact_sound(kind: str, t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One impact, ``t`` = seconds since the impact (>= 0). Peak-normalised."""
    nyq = 0.45 * sr
    if kind == "drum":
        f0, f1, tp = rng.uniform(140, 180), rng.uniform(55, 75), 0.04
        # Pitch glides from f0 down to f1; phase is the integral of the frequency.
        phase = 2 * np.pi * (f1 * t + (f0 - f1) * tp * (1 - np.exp(-t / tp)))
        tone = (np.sin(phase) + 0.35 * np.sin(1.5 * phase)) * np.exp(-t / rng.uniform(0.13, 0.18))
        noise_gain, noise_tau = 0.35, 0.006
    else:
        if kind == "metal":  # free-bar-like inharmonic partials, long ring
            f0, ratios, amps, taus = rng.uniform(450, 750), [1, 2.76, 5.40, 8.93], \
                [1, .7, .5, .3], np.array([.6, .45, .3, .2]) * rng.uniform(0.8, 1.2)
            noise_gain, noise_tau = 0.3, 0.003
        elif kind == "wood":  # short mid-frequency knock
            f0, ratios, amps, taus = rng.uniform(350, 550), [1, 2.2, 3.9], \
                [1, .5, .3], np.array([.035, .025, .015]) * rng.uniform(0.8, 1.2)
            noise_gain, noise_tau = 0.6, 0.005
        else:  # glass: very high, short
            f0, ratios, amps, taus = rng.uniform(2200, 2900), [1, 1.58, 2.3], \
                [1, .6, .4], np.array([.09, .07, .05]) * rng.uniform(0.8, 1.2)
            noise_gain, noise_tau = 0.25, 0.002
        freqs = f0 * np.asarray(ratios, np.float64)
        keep = freqs < nyq  # low sample rates drop partials instead of aliasing them
        freqs, amps, taus = freqs[keep], np.asarray(amps, np.float64)[keep], taus[keep]
        tone = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None])
                * np.exp(-t[None] / taus[:, None])).sum(0)
    # The noise click makes the attack immediate (sines start at phase 0).
    click = rng.standard_normal(t.shape) * np.exp(-t / noise_tau)
    sound = tone / max(np.abs(tone).max(), 1e-9) + noise_gain * click
    return sound / max(np.abs(sound).max(), 1e-9)


# Seconds until an impact of each kind has decayed by 60 dB: its slowest partial's longest time constant (the
# ranges in `_impact_sound`) x ln(1000).
SECONDS_TO_60_DB = {"metal": 5.0, "wood": 0.3, "glass": 0.75, "drum": 1.25}
V1_TAIL_SECONDS = 1.5  # how long v1 renders every impact: metal's ring is cut off at about -18 dB


def _render_audio(sr: int, N: int, noise_level: float, kind: str, events: np.ndarray,
                  rng: np.random.Generator, tail_seconds: float = V1_TAIL_SECONDS) -> np.ndarray:
    """Impacts of ``kind`` starting exactly at ``events`` (seconds) in ``N`` samples at ``sr`` Hz, each rendered
    for ``tail_seconds``. v1's 1.5 s (:data:`V1_TAIL_SECONDS`) covers wood, glass and drum to -60 dB but cuts
    metal's ring off abruptly at about -18 dB; v2 renders each kind until it has decayed by 60 dB
    (:data:`SECONDS_TO_60_DB`)."""
    audio = np.zeros(N, np.float64)
    for te in events:
        start = int(math.ceil(te * sr - 1e-9))  # first sample at or after the impact
        stop = min(N, start + int(tail_seconds * sr))
        if start >= N:
            continue
        t = np.arange(start, stop) / sr - te  # exact sub-sample time since the impact
        audio[start:stop] += rng.uniform(0.5, 0.9) * _impact_sound(kind, t, sr, rng)
    if noise_level > 0:
        audio += noise_level * rng.standard_normal(N)
    peak = np.abs(audio).max() if N else 0.0
    if peak > 0.95:  # overlapping rings can add up; keep clear of clipping
        audio *= 0.95 / peak
    return audio.astype(np.float32)


def _as_rng(rng: Union[None, int, np.random.Generator, np.random.SeedSequence],
            default_seed: int) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(default_seed)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer, np.random.SeedSequence)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be None, an int seed or a numpy Generator, got {type(rng)}")


def generate_clip(config: Optional[SynthHitsConfig] = None,
                  rng: Union[None, int, np.random.Generator] = None,
                  kind: Optional[str] = None) -> Dict[str, Any]:
    """Generate one SynthHits clip in memory.

    Args:
        config: clip options (defaults: ``SynthHitsConfig()``).
        rng: an int seed or a ``numpy.random.Generator``; ``None`` uses ``config.seed``.
            The same seed (and kind) always gives identical arrays.
        kind: one of ``config.kinds``; ``None`` draws one from ``rng``.

    Returns:
        dict with ``frames`` (F, H, W, 3) uint8 at times ``k / fps``, ``audio`` (N,) float32 in
        [-1, 1], ``event_times`` (list of float seconds), ``kind``, ``audio_caption``,
        ``video_caption``.
    """
    cfg = config if config is not None else SynthHitsConfig()
    if not isinstance(cfg, SynthHitsConfig):
        raise ValueError(f"config must be a SynthHitsConfig, got {type(cfg)}")
    gen = _as_rng(rng, cfg.seed)
    if kind is None:
        kind = cfg.kinds[int(gen.integers(len(cfg.kinds)))]
    elif kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {SYNTHHITS_KINDS}")
    events = _sample_event_times(cfg, gen)
    # Independent streams for picture and sound so changing one renderer leaves the other's
    # randomness (and the event times) untouched.
    video_rng, audio_rng = (np.random.default_rng(int(s)) for s in gen.integers(2**63, size=2))
    frames = _render_frames(cfg, kind, events, video_rng)
    audio = _render_audio(cfg.sample_rate, cfg.num_samples, cfg.noise_level, kind, events, audio_rng)
    return dict(
        frames=frames,
        audio=audio,
        event_times=[float(t) for t in events],
        kind=kind,
        audio_caption=_KINDS[kind]["audio_caption"],
        video_caption=_KINDS[kind]["video_caption"],
    )


def _clip_seed(dataset_seed: int, index: int) -> int:
    # Depends only on (dataset seed, index): growing a dataset keeps its first clips.
    return int(np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1)[0])


def make_synthetic_dataset(out_dir: Union[str, Path], num_clips: int,
                           config: Optional[SynthHitsConfig] = None,
                           seed: Optional[int] = None, progress: bool = True) -> Path:
    """Write ``num_clips`` SynthHits clips and ``metadata.jsonl`` to ``out_dir``.

    Clip ``i`` is ``clip_{i:06d}.mp4`` / ``.wav``, generated by
    ``generate_clip(config, seed=<metadata "seed">, kind=<metadata "kind">)`` with a seed
    derived from (``seed``, i); kinds cycle through ``config.kinds`` so classes stay balanced.
    ``seed=None`` uses ``config.seed``. Each metadata line holds ``file_name``, ``audio_file``,
    ``audio_caption``, ``video_caption``, ``event_times``, ``kind``, ``fps``, ``sample_rate``,
    ``duration``, ``num_frames``, ``num_samples`` and ``seed``. An existing ``metadata.jsonl``
    is overwritten. Returns ``out_dir`` as a Path.
    """
    from tqdm.auto import tqdm

    cfg = config if config is not None else SynthHitsConfig()
    if not isinstance(cfg, SynthHitsConfig):
        raise ValueError(f"config must be a SynthHitsConfig, got {type(cfg)}")
    if isinstance(num_clips, bool) or not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    base_seed = cfg.seed if seed is None else seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in tqdm(range(int(num_clips)), desc="SynthHits", disable=not progress):
        clip_seed = _clip_seed(base_seed, i)
        kind = cfg.kinds[i % len(cfg.kinds)]
        clip = generate_clip(cfg, clip_seed, kind=kind)
        stem = f"clip_{i:06d}"
        # lossless (yuv444p, crf 0): one-frame flashes and colours must survive the round trip
        write_video(out / f"{stem}.mp4", clip["frames"], cfg.fps, lossless=True)
        write_wav(out / f"{stem}.wav", clip["audio"], cfg.sample_rate)
        lines.append(json.dumps(dict(
            file_name=f"{stem}.mp4", audio_file=f"{stem}.wav",
            audio_caption=clip["audio_caption"], video_caption=clip["video_caption"],
            event_times=clip["event_times"], kind=kind, fps=float(cfg.fps),
            sample_rate=int(cfg.sample_rate), duration=float(cfg.duration),
            num_frames=cfg.num_frames, num_samples=cfg.num_samples, seed=clip_seed,
        )))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
