"""av-link: cross-modal audio-video generation with Fusion Blocks between frozen flow-matching DiTs."""
__version__ = "0.1.0"
