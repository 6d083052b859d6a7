"""Frozen text encoding for training: captions -> (hidden states, mask), never part of the trained graph."""

import torch


class FrozenTextEncoder:
    """Callable `captions -> (hidden (B, L, D), mask (B, L) bool)`. Deliberately not an `nn.Module`, so
    accelerate/DDP/FSDP leave it alone when they wrap the training objective that holds it."""

    def __init__(self, text_encoder, tokenizer, max_sequence_length: int = 128):
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer, self.max_sequence_length = tokenizer, max_sequence_length

    def to(self, device, dtype=None):
        self.text_encoder.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def __call__(self, captions: list[str]):
        device = self.text_encoder.device
        tokens = self.tokenizer(list(captions), padding="longest", truncation=True, max_length=self.max_sequence_length, return_tensors="pt")
        mask = tokens.attention_mask.to(device)
        return self.text_encoder(tokens.input_ids.to(device), attention_mask=mask).last_hidden_state, mask.bool()
