"""Evaluation metrics for V2A / A2V.

librosa and OpenCV are imported only when a metric needs them (``pip install av-link[eval]``).
"""

from .av_align import audio_peaks, av_align, av_align_iou, optical_flow_magnitudes, video_peaks
from .contact import contact_band, contact_signal, contact_time_metrics, detect_contacts
from .event_time import detect_visual_events, event_time_accuracy, visual_event_signal
from .kind import SILENCE, SoundKindClassifier, kind_accuracy, sound_kind_features
from .onset import ONSET_SAMPLE_RATE, average_precision, detect_onsets, onset_metrics
from .ring_ripple import ring_ripple_db
from .video_kind import VideoKindClassifier, video_kind_features

__all__ = [
    "ONSET_SAMPLE_RATE",
    "SILENCE",
    "SoundKindClassifier",
    "VideoKindClassifier",
    "audio_peaks",
    "av_align",
    "av_align_iou",
    "average_precision",
    "contact_band",
    "contact_signal",
    "contact_time_metrics",
    "detect_contacts",
    "detect_onsets",
    "detect_visual_events",
    "event_time_accuracy",
    "kind_accuracy",
    "onset_metrics",
    "ring_ripple_db",
    "optical_flow_magnitudes",
    "sound_kind_features",
    "video_kind_features",
    "video_peaks",
    "visual_event_signal",
]
