from .backbone import BackboneState
from .fusion import AVLinkFusionAdapter, AVLinkFusionBlock
from .joint import JointOutput, embed_prefix, joint_forward
from .presets import PRESETS
from .transformer_audio import AVLinkAudioTransformer
from .transformer_video import AVLinkVideoTransformer
