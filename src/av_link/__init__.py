"""av-link: cross-modal audio-video generation with Fusion Blocks between frozen flow-matching DiTs."""

__version__ = "0.1.0"

from .models import (
    AVLinkAudioTransformer,
    AVLinkFusionAdapter,
    AVLinkVideoTransformer,
    BackboneState,
    JointOutput,
    embed_prefix,
    joint_forward,
)
from .schedulers import FlowMatchEulerScheduler, FlowMatchEulerSchedulerOutput
from .pipelines import (
    AVLinkA2VPipeline,
    AVLinkAudioPipelineOutput,
    AVLinkTextToAudioPipeline,
    AVLinkTextToVideoPipeline,
    AVLinkV2APipeline,
    AVLinkVideoPipelineOutput,
)
