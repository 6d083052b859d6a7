"""The kind of a SynthHits clip from its look: the video side of kind agreement between generated audio and video.

SynthHits kinds differ in look as in sound (docs/synthhits.md): each has its own surface colour and object colour
(both jittered per clip). The classifier reads two colours per clip, averaged over its frames: the surface band's
mean (`utils.synthhits_layout.surface_rows`, scaled to the frame's height), and the mean of the pixels above it that differ
most from that region's median colour (the object, and any distractor). It standardises them with the training
clips' statistics and predicts the nearest kind centroid. `fit` takes ground-truth clips; `evaluation` fits it on
clips no split contains, as it does the sound classifier.
"""

from typing import Dict, Sequence

import numpy as np

from ._common import video_frames_uint8


def video_kind_features(frames) -> np.ndarray:
    """(6,) features of uint8 or [0, 1] frames `(F, H, W, 3)`: the surface's and the object's mean RGB in [0, 1]."""
    from ..utils.synthhits_layout import surface_rows

    video = video_frames_uint8(frames).astype(np.float32) / 255.0
    height = video.shape[1]
    top, bottom = surface_rows(height)
    surface = video[:, top:bottom].reshape(-1, 3).mean(0)
    above = video[:, :top].reshape(-1, 3)
    distance = np.abs(above - np.median(above, axis=0)).sum(1)
    salient = above[distance >= np.quantile(distance, 0.98)]
    return np.concatenate([surface, salient.mean(0)])


class VideoKindClassifier:
    """Nearest standardised centroid of `video_kind_features`."""

    def fit(self, videos: Sequence, kinds: Sequence[str]) -> "VideoKindClassifier":
        if len(videos) != len(kinds) or not videos:
            raise ValueError(f"need one kind per video, got {len(videos)} videos and {len(kinds)} kinds")
        features = np.stack([video_kind_features(v) for v in videos])
        self.mean, self.scale = features.mean(0), features.std(0) + 1e-6
        z = (features - self.mean) / self.scale
        self.kinds = sorted(set(kinds))
        self.centroids = np.stack([z[[k == kind for k in kinds]].mean(0) for kind in self.kinds])
        return self

    def _distances(self, frames) -> np.ndarray:
        if not hasattr(self, "centroids"):
            raise RuntimeError("VideoKindClassifier is not fitted: call fit() first")
        z = (video_kind_features(frames) - self.mean) / self.scale
        return ((self.centroids - z) ** 2).sum(1)

    def predict(self, frames) -> str:
        distances = self._distances(frames)
        return self.kinds[int(np.argmin(distances))]

    def predict_proba(self, frames) -> Dict[str, float]:
        logits = -0.5 * self._distances(frames)
        p = np.exp(logits - logits.max())  # a softmax over the kinds' squared standardised distances
        return dict(zip(self.kinds, (p / p.sum()).tolist()))
