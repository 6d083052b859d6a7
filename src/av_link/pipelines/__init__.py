# diffusers' loader resolves only component modules that are already imported: make sure every av-link component
# module is, whichever way the pipelines are reached (`import av_link` itself imports nothing).
from .. import models, schedulers  # noqa: F401
from . import family_avlink, family_longcat, family_wan  # noqa: F401  (registers the backbone families)
from .pipeline_av_link_a2v import AVLinkA2VPipeline
from .pipeline_av_link_text_to_audio import AVLinkTextToAudioPipeline
from .pipeline_av_link_text_to_audio_video import AVLinkTextToAudioVideoPipeline
from .pipeline_av_link_text_to_video import AVLinkTextToVideoPipeline
from .pipeline_av_link_v2a import AVLinkV2APipeline
from .pipeline_output import AVLinkAudioPipelineOutput, AVLinkAudioVideoPipelineOutput, AVLinkVideoPipelineOutput

# `DiffusionPipeline.from_pretrained(folder)` looks the pipeline class up in the diffusers namespace.
from ..diffusers_registration import register_pipelines  # noqa: E402

register_pipelines()
