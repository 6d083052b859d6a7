"""Where the Fusion objective gets one modality's clean signal `x1` and its text, per kind of backbone.

`fusion_loss` asks each modality's inputs for `signal(batch)` (model space: av-link's mel / pixels, or a VAE's
latents) and `encode_text(captions) -> (states, mask or None)`:

- `OwnInputs`: av-link's own backbones: `batch["mel"]` / `batch["video"]`, one shared text encoder.
- `FamilyInputs`: a backbone family (pipelines/families.py): the clip's waveform / pixels through the family's own
  VAE, the captions through its own text encoding (one encoder object when both families share the model).
- `latent_cache.CachedInputs`: the same latents and text states, read from a cache that `FamilyInputs` wrote.

Text states of a family are handled as one row per caption (its real tokens, `text_rows`) and batched by
`collate_text`, so training from raw clips and from the cache feed the backbone identical tensors: a batch is
never encoded padded to its longest caption (LongCat's text convolution would see the other captions' padding).
"""

import torch

FIXED = "fixed"  # the family pads every text to max_sequence_length with zeros and passes no mask (Wan)
LONGEST = "longest"  # the family passes a token mask: pad to the batch's longest text with zeros, mask them out


class OwnInputs:
    """av-link's own backbones: the dataset's normalised mel or pixels, and the shared `FrozenTextEncoder`."""

    def __init__(self, modality: str, encode_text):
        self.modality, self.encode_text = modality, encode_text

    def signal(self, batch: dict) -> torch.Tensor:
        return batch["mel"] if self.modality == "audio" else batch["video"]


def text_rows(family, captions: list[str], device, max_sequence_length: int) -> tuple[list[torch.Tensor], str]:
    """Each caption encoded alone by `family` -> its real tokens `(L_i, D)`, and how the family pads (FIXED, LONGEST).
    Without a mask the family zero-pads (Wan): the trailing all-zero rows are that padding."""
    rows, padding = [], LONGEST
    for caption in captions:
        states, mask = family.encode_text([caption], device, max_sequence_length)
        if mask is None:
            padding = FIXED
            real = states[0].flatten(1).ne(0).any(-1).nonzero()
            rows.append(states[0, : int(real.max()) + 1 if len(real) else 0])
        else:
            rows.append(states[0, mask[0].bool()])
    return rows, padding


def collate_text(rows: list[torch.Tensor], padding: str, max_sequence_length: int):
    """Rows of real tokens -> `(B, L, D)` zero-padded states and a bool mask (None for FIXED, as the family passes)."""
    length = max_sequence_length if padding == FIXED else max(len(r) for r in rows)
    states = rows[0].new_zeros(len(rows), length, rows[0].shape[-1])
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=rows[0].device)
    for i, row in enumerate(rows):
        states[i, : len(row)], mask[i, : len(row)] = row, True
    return states, (None if padding == FIXED else mask)


class FamilyInputs:
    """A diffusers backbone through its family: VAE latents of the clip, the family's own text encoding.

    Runs the VAE and the text encoder every step, without gradients; `latent_cache` precomputes both instead."""

    def __init__(self, family, max_sequence_length: int, device=None):
        self.family, self.max_sequence_length = family, max_sequence_length
        self.modality, self.device = family.modality, device

    def _device(self):
        return self.device if self.device is not None else self.family.text_encoder.device

    def _frozen(self):
        """No gradients and no autocast: the VAEs and text encoders run in their own dtypes, as when they fill the cache
        (outside the training step), so raw and cached training see the same tensors."""
        device = torch.device(self._device())
        return torch.autocast(device.type, enabled=False)

    @torch.no_grad()
    def encode(self, batch: dict) -> torch.Tensor:
        """The clean latents of the batch's clips (waveforms `(B, samples)` or pixels `(B, 3, F, H, W)` in [-1, 1])."""
        key = "waveform" if self.modality == "audio" else "video"
        if key not in batch:
            raise ValueError(f"training a VAE {self.modality} backbone needs the clips' {key} (AVClipDataset return_waveform=True)")
        with self._frozen():
            return self.family.encode(batch[key]).float()

    def signal(self, batch: dict) -> torch.Tensor:
        return self.encode(batch).to(self._device())

    @torch.no_grad()
    def encode_text(self, captions: list[str]):
        with self._frozen():
            rows, padding = text_rows(self.family, list(captions), self._device(), self.max_sequence_length)
        return collate_text(rows, padding, self.max_sequence_length)
