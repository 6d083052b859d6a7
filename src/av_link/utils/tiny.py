"""Moved to :mod:`av_link.testing`; this name stays importable for code written against av-link 0.1."""

from ..testing import TINY_PIPELINE_CONFIG, tiny_components, tiny_text_encoder  # noqa: F401
