import diffusers

# diffusers' loader resolves only component modules that are already imported: make sure every av-link component
# module is, whichever way the pipelines are reached (`import av_link` itself imports nothing).
from .. import models, schedulers  # noqa: F401
from .pipeline_av_link_a2v import AVLinkA2VPipeline
from .pipeline_av_link_text_to_audio import AVLinkTextToAudioPipeline
from .pipeline_av_link_text_to_video import AVLinkTextToVideoPipeline
from .pipeline_av_link_v2a import AVLinkV2APipeline
from .pipeline_output import AVLinkAudioPipelineOutput, AVLinkVideoPipelineOutput

# `DiffusionPipeline.from_pretrained(folder)` looks the class named in model_index.json up in the diffusers
# namespace: make av-link's pipelines findable there once av_link is imported (components are found through the
# module paths model_index.json records, which need no registration).
for _pipeline in (AVLinkV2APipeline, AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline):
    if getattr(diffusers, _pipeline.__name__, _pipeline) is not _pipeline:
        raise ImportError(f"diffusers already defines a {_pipeline.__name__}; av-link cannot register its own")
    setattr(diffusers, _pipeline.__name__, _pipeline)
