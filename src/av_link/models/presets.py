"""Size registry: named presets for every model class (the DiT `models.py` way)."""

_BACKBONE = {
    # The paper's backbones (576M parameters each) and Fusion Blocks (8 x 23.25M).
    "paper": dict(num_layers=24, hidden_size=1024, num_attention_heads=16, mlp_dim=4096, text_dim=4096),
    "small": dict(num_layers=12, hidden_size=384, num_attention_heads=6, mlp_dim=1536, text_dim=512),
    # Fast on a CPU: tests, demos, the SynthHits models.
    "tiny": dict(num_layers=4, hidden_size=64, num_attention_heads=4, mlp_dim=128, text_dim=32),
}

PRESETS = {
    "AVLinkAudioTransformer": _BACKBONE,
    "AVLinkVideoTransformer": _BACKBONE,
    "AVLinkFusionAdapter": {
        "paper": dict(audio_dim=1024, video_dim=1024, hidden_size=1024, num_attention_heads=16, mlp_dim=4096,
                      num_audio_layers=24, num_video_layers=24, num_blocks=8),
        "small": dict(audio_dim=384, video_dim=384, hidden_size=384, num_attention_heads=6, mlp_dim=1536,
                      num_audio_layers=12, num_video_layers=12, num_blocks=4),
        "tiny": dict(audio_dim=64, video_dim=64, hidden_size=64, num_attention_heads=4, mlp_dim=128,
                     num_audio_layers=4, num_video_layers=4, num_blocks=2, time_embed_dim=64),
    },
}


def get_preset(class_name: str, name: str) -> dict:
    presets = PRESETS[class_name]
    if name not in presets:
        raise ValueError(f"unknown preset {name!r} for {class_name}; choose from {sorted(presets)}")
    return dict(presets[name])


class PresetMixin:
    @classmethod
    def from_preset(cls, name: str, **overrides):
        """A randomly initialised model of a registered size (`"paper"`, `"small"`, `"tiny"`); kwargs override."""
        return cls(**{**get_preset(cls.__name__, name), **overrides})
