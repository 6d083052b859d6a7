from .lora import AVLinkLoraLoaderMixin, lora_save_kwargs

# importing this package may have imported diffusers first, before the pipelines could load (diffusers_registration)
from ..diffusers_registration import register_if_pending  # noqa: E402

register_if_pending()
