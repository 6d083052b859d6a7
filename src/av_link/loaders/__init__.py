from .lora import AVLinkLoraLoaderMixin, lora_save_kwargs
