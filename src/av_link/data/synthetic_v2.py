"""SynthHits v2: impacts that can only be seen through the motion, at any frame rate.

v1 (:mod:`av_link.data.synthetic`) flashed the surface in the frame of each impact, and a model could
time its sounds from that one bright frame without following the object at all. In v2:

- **Motion only.** The object falls along a parabola, meets the surface, and its vertical velocity
  reverses. Nothing else marks the instant: no flash, no colour or brightness change of the surface.
- **Sub-frame rendering.** Positions come from the analytic trajectory at exact times; a frame ``j``
  integrates the scene over its shutter interval ``[j / fps, (j + shutter) / fps)`` (``shutter`` in
  [0, 1] of the frame period, 0 = an instantaneous sample, 1 = full motion blur), approximated by
  averaging ``subframes`` renders spread evenly over the interval.
- **Any native frame rate**: drawn per clip from 8, 12, 15, 24, 25, 30 and the NTSC 23.976 / 29.97.
- **A silent distractor** (in about half the clips): a grey object that wanders and bobs in the upper
  part of the frame, reversing direction without ever touching the surface or making a sound. Sound
  goes with contacts, not with motion or velocity reversals in general. The bouncing object also
  drifts sideways and turns at the side walls, silently.
- **Kinds differ in look and sound** (object shape and colour, surface colour; see v1's table), so a
  V2A model given an empty prompt must infer the sound's kind from the picture.
- **Varied durations and event counts**, with a splits registry: ``train`` and ``id`` (2-6 s, 0.3-1.2
  impacts/s, at least 0.35 s apart) and ``ood`` (7-10 s, 1.2-2.5 impacts/s, down to 0.2 s apart: more
  events, closer spacing, longer clips and durations training never saw).

The layout is v1's (the surface fills :func:`~av_link.data.synthetic.surface_rows`, the background is
dark), so the motion-based contact detector (:mod:`av_link.metrics.contact`) reads both. Files are v1's
too: ``clip_XXXXXX.mp4`` (lossless H.264 4:4:4 at the clip's exact native rate), ``.wav`` (16-bit PCM) and
``metadata.jsonl`` with exact event times, kind, source ``fps``, ``shutter`` and ``distractor``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .synthetic import (
    _BACKGROUND_RGB,
    _KINDS,
    SECONDS_TO_60_DB,
    SYNTHHITS_KINDS,
    V1_TAIL_SECONDS,
    _as_rng,
    _clip_seed,
    _jitter,
    _render_audio,
    surface_rows,
)

__all__ = ["SYNTHHITS_V2_FPS", "SYNTHHITS_V2_SPLITS", "SynthHitsV2Config", "generate_clip_v2", "make_synthhits_v2_dataset"]

SYNTHHITS_V2_FPS: Tuple[float, ...] = (8.0, 12.0, 15.0, 24.0, 25.0, 30.0, 24000 / 1001, 30000 / 1001)

# How far below its centre each shape reaches, in (radius + half a pixel of anti-aliased edge): the diamond's
# corners reach further (see _coverage).
_REACH = {"diamond": 1.3}
# The distractor stays above this share of the frame height: at least a quarter of the frame clear of the
# surface, so it can never be read as a contact.
_DISTRACTOR_FLOOR = 0.55


@dataclass(frozen=True)
class SynthHitsV2Config:
    """Options of SynthHits v2 clips. Per-clip values (duration, fps, shutter, event count) are drawn
    from the ranges / choices here; :meth:`split` gives the registered splits."""

    width: int = 32
    height: int = 32
    fps_choices: Tuple[float, ...] = SYNTHHITS_V2_FPS
    sample_rate: int = 16000
    duration_range: Tuple[float, float] = (2.0, 6.0)
    events_per_second: Tuple[float, float] = (0.3, 1.2)
    min_gap: float = 0.35  # seconds between consecutive impacts
    edge_margin: float = 0.15  # no impact closer than this to the clip start or end
    shutter_range: Tuple[float, float] = (0.0, 1.0)
    subframes: int = 16  # renders averaged over a fully open shutter (fewer for shorter shutters)
    distractor_probability: float = 0.5
    kinds: Tuple[str, ...] = SYNTHHITS_KINDS
    noise_level: float = 0.0
    # Seconds each impact is rendered for. None: until it has decayed by 60 dB, and never shorter than v1's 1.5 s
    # (so only metal's clips change: its ring is still at about -18 dB after 1.5 s, where v1, and v2 data made
    # before this option existed, cut it off abruptly; 1.5 remakes that data).
    impact_tail_seconds: Optional[float] = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "fps_choices", tuple(float(f) for f in self.fps_choices))
        for name in ("width", "height", "sample_rate", "subframes", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"SynthHitsV2Config.{name} must be an integer, got {value!r}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"width and height must be >= 8 px, got {self.width}x{self.height}")
        if not self.fps_choices or min(self.fps_choices) <= 0:
            raise ValueError(f"fps_choices must be positive frame rates, got {self.fps_choices}")
        if self.sample_rate < 4000:
            raise ValueError(f"sample_rate must be >= 4000 Hz, got {self.sample_rate}")
        for name, (lo, hi) in (("duration_range", self.duration_range), ("events_per_second", self.events_per_second),
                               ("shutter_range", self.shutter_range)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if self.shutter_range[1] > 1:
            raise ValueError(f"shutter_range is a fraction of the frame period, at most 1, got {self.shutter_range}")
        if not self.min_gap > 0 or self.edge_margin < 0:
            raise ValueError(f"need min_gap > 0 and edge_margin >= 0, got {self.min_gap}, {self.edge_margin}")
        if self.duration_range[0] < 2 * self.edge_margin + 2 / min(self.fps_choices):
            raise ValueError(f"duration_range {self.duration_range} is too short for edge_margin {self.edge_margin}")
        if self.impact_tail_seconds is not None and not self.impact_tail_seconds > 0:
            raise ValueError(f"impact_tail_seconds must be positive (or None), got {self.impact_tail_seconds}")
        if not 0 <= self.distractor_probability <= 1 or self.noise_level < 0 or self.subframes < 1:
            raise ValueError("need 0 <= distractor_probability <= 1, noise_level >= 0 and subframes >= 1")
        unknown = [k for k in self.kinds if k not in _KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {SYNTHHITS_KINDS}, got {self.kinds}")

    @classmethod
    def split(cls, name: str, **overrides) -> "SynthHitsV2Config":
        """``train`` / ``id`` (the training distribution) or ``ood`` (more and closer events, longer clips)."""
        if name not in SYNTHHITS_V2_SPLITS:
            raise ValueError(f"unknown SynthHits v2 split {name!r}; choose from {sorted(SYNTHHITS_V2_SPLITS)}")
        return replace(SYNTHHITS_V2_SPLITS[name], **overrides)


SYNTHHITS_V2_SPLITS: Dict[str, SynthHitsV2Config] = {
    "train": SynthHitsV2Config(),
    "id": SynthHitsV2Config(),
    "ood": SynthHitsV2Config(duration_range=(7.0, 10.0), events_per_second=(1.2, 2.5), min_gap=0.2),
}
# Default dataset seeds: the held-out splits never share a clip seed with training.
SPLIT_SEEDS = {"train": 1, "id": 10_000_000, "ood": 20_000_000}


def _sample_events(cfg: SynthHitsV2Config, duration: float, rng: np.random.Generator) -> np.ndarray:
    lo, hi = cfg.edge_margin, duration - cfg.edge_margin
    most = int(math.floor((hi - lo) / cfg.min_gap)) + 1  # what fits at min_gap spacing
    n_lo = max(1, int(math.floor(cfg.events_per_second[0] * duration)))
    n_hi = max(n_lo, int(math.floor(cfg.events_per_second[1] * duration)))
    n = min(int(rng.integers(n_lo, n_hi + 1)), most)
    # Uniform over all valid configurations: sorted uniforms in the slack, then add the gaps.
    slack = (hi - lo) - (n - 1) * cfg.min_gap
    return lo + np.sort(rng.uniform(0.0, slack, size=n)) + cfg.min_gap * np.arange(n)


def _bounce_height(events: np.ndarray, duration: float, max_height: float, rng: np.random.Generator):
    """Height above the surface (px) of the object's bottom edge as a function of time: parabolic flights
    between contacts (virtual contacts outside the clip keep it airborne at the ends), so it touches the
    surface exactly at the impacts and nowhere else."""
    before = min(events[0] - 0.35, 0.0) - rng.uniform(0.1, 0.5)
    after = max(events[-1] + 0.35, duration) + rng.uniform(0.1, 0.5)
    knots = np.concatenate([[before], events, [after]])
    gaps = np.diff(knots)
    apex = max_height * np.clip(gaps / 0.8, 0.35, 1.0)  # longer flights go higher

    def height(t):
        seg = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(gaps) - 1)
        u = (t - knots[seg]) / gaps[seg]
        return 4.0 * apex[seg] * u * (1.0 - u)

    return height


def _reflect(x, lo: float, hi: float):
    """Position on a segment bounced between walls at lo and hi (a triangle wave)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _coverage(shape: str, cx, cy, radius, H: int, W: int) -> np.ndarray:
    """Anti-aliased coverage (..., H, W) of a shape centred at (cx, cy) (arrays of the same shape)."""
    ys = np.arange(H)[:, None] + 0.5
    xs = np.arange(W)[None, :] + 0.5
    dx, dy = xs - np.asarray(cx)[..., None, None], ys - np.asarray(cy)[..., None, None]
    if shape == "disk":
        dist = np.sqrt(dx ** 2 + dy ** 2)
    elif shape == "square":
        dist = np.maximum(np.abs(dx), np.abs(dy))
    elif shape == "ring":
        return np.clip(radius * 0.45 + 0.5 - np.abs(np.sqrt(dx ** 2 + dy ** 2) - radius * 0.55), 0.0, 1.0)
    else:  # diamond, scaled so its corners reach a bit further than the disk
        dist = (np.abs(dx) + np.abs(dy)) / 1.3
    return np.clip(radius + 0.5 - dist, 0.0, 1.0)


def _render_frames(cfg: SynthHitsV2Config, kind: str, events: np.ndarray, duration: float, fps: float,
                   shutter: float, distractor: bool, rng: np.random.Generator) -> np.ndarray:
    spec = _KINDS[kind]
    H, W = cfg.height, cfg.width
    num_frames = int(round(duration * fps))
    top, _ = surface_rows(H)
    radius = rng.uniform(0.09, 0.12) * min(H, W)
    # Centre to the lowest point the anti-aliased shape touches (pixel centres sit 0.5 px inside a row): at a
    # contact it rests on the surface's top edge without covering any surface pixel.
    reach = _REACH.get(spec["shape"], 1.0) * (radius + 0.5) - 0.5
    obj_rgb, surf_rgb = _jitter(spec["object_rgb"], rng), _jitter(spec["surface_rgb"], rng)
    height = _bounce_height(events, duration, max(top - 2.0 * reach - 1.0, 1.0), rng)
    x0, vx = rng.uniform(radius + 1.0, W - radius - 1.0), rng.uniform(-0.15, 0.15) * W  # px, px/s

    if distractor:
        d_radius = rng.uniform(0.07, 0.1) * min(H, W)
        d_rgb = np.full(3, rng.uniform(150, 215))
        d_shape = str(rng.choice(["ring", "square"]))
        y_lo, y_hi = d_radius + 1.0, max(d_radius + 1.0, _DISTRACTOR_FLOOR * H - d_radius)
        d_y0, d_amp = (y_lo + y_hi) / 2, (y_hi - y_lo) / 2
        d_freq, d_phase = rng.uniform(0.4, 1.5), rng.uniform(0, 2 * np.pi)
        d_x0, d_vx = rng.uniform(d_radius + 1.0, W - d_radius - 1.0), rng.uniform(0.1, 0.4) * W * rng.choice([-1, 1])

    # Sub-frame times: each frame averages renders spread over its open shutter.
    steps = 1 if shutter == 0 else max(2, int(math.ceil(shutter * cfg.subframes)))
    offsets = shutter * (np.arange(steps) + 0.5) / steps
    t = (np.arange(num_frames)[:, None] + offsets[None, :]) / fps  # (F, S)

    frames = np.zeros((num_frames, H, W, 3))
    base = np.broadcast_to(_BACKGROUND_RGB, (H, W, 3)).copy()
    base[top:] = surf_rgb
    cy = top - reach - height(t)  # object centre row (sub-pixel); never below the surface's top edge
    cx = _reflect(x0 + vx * t, radius + 0.5, W - radius - 0.5)
    for s in range(steps):
        img = np.broadcast_to(base, (num_frames, H, W, 3)).copy()
        if distractor:
            dy = d_y0 + d_amp * np.sin(2 * np.pi * d_freq * t[:, s] + d_phase)
            dx = _reflect(d_x0 + d_vx * t[:, s], d_radius + 0.5, W - d_radius - 0.5)
            a = _coverage(d_shape, dx, dy, d_radius, H, W)[..., None]
            img = img * (1 - a) + d_rgb * a
        a = _coverage(spec["shape"], cx[:, s], cy[:, s], radius, H, W)[..., None]
        frames += img * (1 - a) + obj_rgb * a
    return np.clip(np.round(frames / steps), 0, 255).astype(np.uint8)


def generate_clip_v2(config: Optional[SynthHitsV2Config] = None, rng: Union[None, int, np.random.Generator] = None,
                     kind: Optional[str] = None, fps: Optional[float] = None, duration: Optional[float] = None,
                     shutter: Optional[float] = None, distractor: Optional[bool] = None) -> Dict[str, Any]:
    """Generate one SynthHits v2 clip in memory. Unset per-clip choices are drawn from ``rng`` (an int seed
    or a numpy Generator; ``None`` uses ``config.seed``); the same seed and choices give identical arrays.

    Returns a dict with ``frames`` (F, H, W, 3) uint8 (frame ``j`` exposed over ``[j, j + shutter) / fps``),
    ``audio`` (N,) float32, ``event_times`` (seconds), ``kind``, ``fps``, ``duration``, ``shutter``,
    ``distractor``, ``audio_caption`` and ``video_caption``.
    """
    cfg = config if config is not None else SynthHitsV2Config()
    if not isinstance(cfg, SynthHitsV2Config):
        raise ValueError(f"config must be a SynthHitsV2Config, got {type(cfg).__name__}")
    gen = _as_rng(rng, cfg.seed)
    # Every choice is drawn even when given, so fixing one leaves the others' draws unchanged.
    drawn_kind = cfg.kinds[int(gen.integers(len(cfg.kinds)))]
    drawn_fps = cfg.fps_choices[int(gen.integers(len(cfg.fps_choices)))]
    drawn_duration = float(gen.uniform(*cfg.duration_range))
    drawn_shutter = float(gen.uniform(*cfg.shutter_range))
    drawn_distractor = bool(gen.random() < cfg.distractor_probability)
    kind = drawn_kind if kind is None else kind
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {SYNTHHITS_KINDS}")
    fps = float(drawn_fps if fps is None else fps)
    duration = float(drawn_duration if duration is None else duration)
    shutter = float(drawn_shutter if shutter is None else shutter)
    distractor = drawn_distractor if distractor is None else bool(distractor)
    if not fps > 0 or not 0 <= shutter <= 1 or duration < 2 * cfg.edge_margin + 2 / fps:
        raise ValueError(f"need fps > 0, 0 <= shutter <= 1 and a duration of at least two frames plus the edge "
                         f"margins, got fps={fps}, shutter={shutter}, duration={duration}")
    # Whole frames: the clip's duration is what its frames cover, and the audio matches it.
    duration = int(round(duration * fps)) / fps
    events = _sample_events(cfg, duration, gen)
    video_rng, audio_rng = (np.random.default_rng(int(s)) for s in gen.integers(2**63, size=2))
    frames = _render_frames(cfg, kind, events, duration, fps, shutter, distractor, video_rng)
    tail = cfg.impact_tail_seconds
    if tail is None:
        tail = max(V1_TAIL_SECONDS, SECONDS_TO_60_DB[kind])
    audio = _render_audio(cfg.sample_rate, int(round(duration * cfg.sample_rate)), cfg.noise_level, kind, events,
                          audio_rng, tail_seconds=tail)
    return dict(frames=frames, audio=audio, event_times=[float(t) for t in events], kind=kind, fps=fps,
                duration=duration, shutter=shutter, distractor=distractor,
                audio_caption=_KINDS[kind]["audio_caption"], video_caption=_KINDS[kind]["video_caption"])


def make_synthhits_v2_dataset(out_dir: Union[str, Path], num_clips: int, split: str = "train",
                              config: Optional[SynthHitsV2Config] = None, seed: Optional[int] = None,
                              progress: bool = True) -> Path:
    """Write ``num_clips`` SynthHits v2 clips of ``split`` (or of ``config``) and ``metadata.jsonl``.

    Clip ``i`` has a seed derived from (``seed``, i) (default: the split's own, :data:`SPLIT_SEEDS`), so a
    larger dataset starts with the same clips. Kinds and native frame rates are balanced: clip ``i`` has
    fps ``fps_choices[i % n_fps]`` and kind ``kinds[(i + i // n_fps) % n_kinds]``, so any 8 consecutive clips
    cover every rate and every kind appears at every rate.
    """
    from tqdm.auto import tqdm

    from ..utils.media_io import write_video, write_wav

    cfg = config if config is not None else SynthHitsV2Config.split(split)
    if isinstance(num_clips, bool) or not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    base_seed = SPLIT_SEEDS.get(split, cfg.seed) if seed is None else seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_fps, lines = len(cfg.fps_choices), []
    for i in tqdm(range(int(num_clips)), desc=f"SynthHits v2 ({split})", disable=not progress):
        clip_seed = _clip_seed(base_seed, i)
        clip = generate_clip_v2(cfg, clip_seed, kind=cfg.kinds[(i + i // n_fps) % len(cfg.kinds)],
                                fps=cfg.fps_choices[i % n_fps])
        stem = f"clip_{i:06d}"
        write_video(out / f"{stem}.mp4", clip["frames"], clip["fps"], lossless=True)
        write_wav(out / f"{stem}.wav", clip["audio"], cfg.sample_rate)
        lines.append(json.dumps(dict(
            file_name=f"{stem}.mp4", audio_file=f"{stem}.wav", audio_caption=clip["audio_caption"],
            video_caption=clip["video_caption"], event_times=clip["event_times"], kind=clip["kind"], fps=clip["fps"],
            sample_rate=cfg.sample_rate, duration=clip["duration"], num_frames=len(clip["frames"]),
            num_samples=len(clip["audio"]), shutter=clip["shutter"], distractor=clip["distractor"], seed=clip_seed,
            split=split, version=2, impact_tail_seconds=cfg.impact_tail_seconds,
        )))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
