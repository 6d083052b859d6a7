"""Datasets: SynthHits (synthetic impacts) and AVClipDataset (folders of real clips for training)."""

from .dataset import (
    AVClipDataset,
    AVClipDatasetConfig,
    ClipLoadError,
    av_clip_collate,
    probe_media,
    resample_video_frames,
)
from .synthetic import SYNTHHITS_KINDS, SynthHitsConfig, generate_clip, make_synthetic_dataset, surface_rows

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
]
