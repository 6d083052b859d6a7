"""Datasets: SynthHits v1 and v2 (synthetic impacts) and AVClipDataset (folders of real clips for training)."""

from .dataset import (
    AVClipDataset,
    AVClipDatasetConfig,
    ClipLoadError,
    av_clip_collate,
    probe_media,
    resample_video_frames,
)
from .synthetic import SYNTHHITS_KINDS, SynthHitsConfig, generate_clip, make_synthetic_dataset, surface_rows
from .synthetic_v2 import SYNTHHITS_V2_FPS, SynthHitsV2Config, generate_clip_v2, make_synthhits_v2_dataset

__all__ = [
    "AVClipDataset",
    "AVClipDatasetConfig",
    "ClipLoadError",
    "av_clip_collate",
    "probe_media",
    "resample_video_frames",
    "SYNTHHITS_KINDS",
    "SynthHitsConfig",
    "generate_clip",
    "make_synthetic_dataset",
    "surface_rows",
    "SYNTHHITS_V2_FPS",
    "SynthHitsV2Config",
    "generate_clip_v2",
    "make_synthhits_v2_dataset",
]
