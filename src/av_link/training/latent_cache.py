"""A cache of VAE latents and text states for Fusion training between diffusers backbones (`examples/cache_latents.py`).

Training from raw clips runs both VAEs and the text encoders every step; at real scale (Wan's VAE on 81 frames at
480p, UMT5-XXL) that costs more than the step. The cache stores, per clip, the clean latents both families' VAEs make
and, per distinct caption, the text states each family's encoder makes, exactly as `modality_inputs.FamilyInputs`
computes them, so training from it feeds the backbones the same tensors.

Layout of a cache folder:
- `shard-00000.safetensors`, ...: clips `[k * shard_size, (k + 1) * shard_size)`: `audio.<i>` / `video.<i>` latents,
  `text.audio.<key>` / `text.video.<key>` rows of the shard's captions (and of "", which caption dropout uses);
  the safetensors metadata lists the shard's clips and captions. A shard is written to a temporary name and renamed
  when complete, so an interrupted run resumes at the first missing shard.
- `cache.json`: what the tensors depend on (`cache_identity`), written first: a resumed run, and training, must
  match it.
- `index.json`: every clip's shard and captions, and every caption's shard, written last: its presence marks a
  complete cache.

Each clip is cached as one fixed window, its first `clip_seconds` (random crops would need one entry per crop).
"""

import hashlib
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.dataset import av_clip_collate
from .modality_inputs import collate_text, text_rows

MODALITIES = ("audio", "video")
IDENTITY, INDEX = "cache.json", "index.json"
PROVENANCE = ("_name_or_path", "_diffusers_version", "transformers_version", "architectures", "dtype", "torch_dtype",
              "_commit_hash", "_use_default_values")


def caption_key(caption: str) -> str:
    return hashlib.sha256(caption.encode()).hexdigest()[:20]


def _config(model) -> dict:
    config = model.config if isinstance(model.config, dict) else model.config.to_dict()
    return {k: v for k, v in dict(config).items() if k not in PROVENANCE and not k.startswith("_")}


def cache_identity(config: dict, families: dict, clip_seconds: float, max_sequence_length: int) -> dict:
    """What the cached tensors depend on: the VAEs', text encoders' and tokenizers' configs, the rates and sizes the
    clips are resampled to, the window and the text length. (Weights are not hashed: a cache is for one pair of base
    models, which `cache.json` names.)"""
    identity = {"clip_seconds": float(clip_seconds), "max_sequence_length": int(max_sequence_length),
                "sample_rate": families["audio"].sample_rate, "video_fps": families["video"].fps,
                "height": config["height"], "width": config["width"]}
    for m, family in families.items():
        identity[m] = {"family": type(family).__name__, "vae": [type(family.vae).__name__, _config(family.vae)],
                       "text_encoder": [type(family.text_encoder).__name__, _config(family.text_encoder)],
                       "text_dtype": str(family.text_encoder.dtype).replace("torch.", ""),
                       "tokenizer": [type(family.tokenizer).__name__, len(family.tokenizer)]}
    return json.loads(json.dumps(identity))  # as json.load gives it back (tuples -> lists)


def check_identity(cache_dir: str, expected: dict) -> None:
    """One error naming every setting in which `cache_dir` was made otherwise than `expected`."""
    with open(os.path.join(cache_dir, IDENTITY)) as f:
        saved, now = _leaves(json.load(f)), _leaves(expected)
    differ = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if differ:
        details = "; ".join(f"{k}: cache {_short(saved.get(k))}, now {_short(now.get(k))}" for k in differ)
        hint = " (--text_dtype of cache_latents.py must match train_fusion.py's --mixed_precision)" if any(
            k.endswith("text_dtype") for k in differ) else ""
        raise ValueError(f"the latent cache {cache_dir} was made with other settings or models ({details}){hint}; make a new "
                         "cache with examples/cache_latents.py for these backbones and settings")


def _leaves(tree, prefix: str = "") -> dict:
    """Nested dicts -> {"a.b.c": leaf}, so a difference is named down to the setting."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out = {}
    for key, value in tree.items():
        out.update(_leaves(value, f"{prefix}{key}."))
    return out


def _short(value, limit: int = 160) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def write_latent_cache(dataset, inputs: dict, identity: dict, output_dir: str, shard_size: int = 64, log=print) -> dict:
    """Cache every clip of `dataset` (an `AVClipDataset` without random crops) through `inputs` (per modality, a
    `FamilyInputs`). Resumes an interrupted cache of the same identity; returns the index."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    os.makedirs(output_dir, exist_ok=True)
    if os.path.isfile(os.path.join(output_dir, IDENTITY)):
        check_identity(output_dir, identity)
    else:
        with open(os.path.join(output_dir, IDENTITY), "w") as f:
            json.dump(identity, f, indent=2)
    msl = identity["max_sequence_length"]
    num_shards = -(-len(dataset) // shard_size)
    for shard in range(num_shards):
        path = os.path.join(output_dir, f"shard-{shard:05d}.safetensors")
        if os.path.isfile(path):
            continue
        clips, tensors, captions = [], {}, {m: {""} for m in MODALITIES}
        for position in range(shard * shard_size, min(len(dataset), (shard + 1) * shard_size)):
            item = av_clip_collate([dataset[position]])
            for m in MODALITIES:
                tensors[f"{m}.{position}"] = inputs[m].encode(item)[0].contiguous().cpu()
                captions[m].add(item[f"{m}_caption"][0])
            clips.append({"position": position, "index": int(item["index"][0]), "audio_caption": item["audio_caption"][0],
                          "video_caption": item["video_caption"][0]})
        padding = {}
        for m in MODALITIES:
            ordered = sorted(captions[m])
            rows, padding[m] = text_rows(inputs[m].family, ordered, inputs[m]._device(), msl)
            tensors.update({f"text.{m}.{caption_key(c)}": r.contiguous().cpu() for c, r in zip(ordered, rows)})
        metadata = {"clips": json.dumps(clips), "padding": json.dumps(padding),
                    "captions": json.dumps({m: sorted(captions[m]) for m in MODALITIES})}
        save_file(tensors, path + ".tmp", metadata=metadata)
        os.replace(path + ".tmp", path)  # complete shards only: a killed run resumes here
        log(f"cached shard {shard + 1}/{num_shards} ({len(clips)} clips)")
    return write_index(output_dir, num_shards)


def write_index(output_dir: str, num_shards: int) -> dict:
    index = {"clips": [], "texts": {m: {} for m in MODALITIES}, "padding": None}
    for shard in range(num_shards):
        name = f"shard-{shard:05d}.safetensors"
        with safe_open(os.path.join(output_dir, name), "pt") as f:
            meta = f.metadata()
        index["clips"] += [{**clip, "shard": name} for clip in json.loads(meta["clips"])]
        index["padding"] = json.loads(meta["padding"])
        for m, captions in json.loads(meta["captions"]).items():
            for caption in captions:
                index["texts"][m].setdefault(caption_key(caption), name)
    with open(os.path.join(output_dir, INDEX), "w") as f:
        json.dump(index, f)
    return index


class LatentCache:
    """A complete cache, read lazily (safetensors shards are memory-mapped, tensors read one at a time)."""

    def __init__(self, cache_dir: str):
        path = os.path.join(cache_dir, INDEX)
        if not os.path.isfile(path):
            raise ValueError(f"--latent_cache {cache_dir} is not a complete latent cache (no {INDEX}): run or resume "
                             "examples/cache_latents.py into it first")
        self.cache_dir = cache_dir
        with open(path) as f:
            self.index = json.load(f)
        with open(os.path.join(cache_dir, IDENTITY)) as f:
            self.identity = json.load(f)
        self._handles = {}

    def tensor(self, shard: str, key: str) -> torch.Tensor:
        if shard not in self._handles:  # per process: DataLoader workers open their own
            self._handles[shard] = safe_open(os.path.join(self.cache_dir, shard), "pt")
        return self._handles[shard].get_tensor(key)

    def text_row(self, modality: str, caption: str) -> torch.Tensor:
        key = caption_key(caption)
        shard = self.index["texts"][modality].get(key)
        if shard is None:
            raise KeyError(f"the latent cache holds no {modality} text states for caption {caption!r}")
        return self.tensor(shard, f"text.{modality}.{key}")

    def __getstate__(self):  # DataLoader workers: without the open handles
        return {**self.__dict__, "_handles": {}}


class LatentCacheDataset(torch.utils.data.Dataset):
    """The cached clips as training items: `audio_latents`, `video_latents`, the two captions and the clip's `index`
    in the dataset it was cached from (the objective's random draws are per index, as from raw clips)."""

    collate_fn = staticmethod(av_clip_collate)

    def __init__(self, cache: LatentCache):
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache.index["clips"])

    def __getitem__(self, position: int) -> dict:
        clip = self.cache.index["clips"][position]
        item = {f"{m}_latents": self.cache.tensor(clip["shard"], f"{m}.{clip['position']}") for m in MODALITIES}
        return {**item, "audio_caption": clip["audio_caption"], "video_caption": clip["video_caption"], "index": clip["index"]}


class CachedInputs:
    """`modality_inputs.FamilyInputs`, read back from the cache: no VAE, no text encoder."""

    def __init__(self, cache: LatentCache, modality: str, device=None):
        self.cache, self.modality, self.device = cache, modality, device
        self.padding = cache.index["padding"][modality]
        self.max_sequence_length = cache.identity["max_sequence_length"]

    def signal(self, batch: dict) -> torch.Tensor:
        return batch[f"{self.modality}_latents"]

    def encode_text(self, captions: list[str]):
        rows = [self.cache.text_row(self.modality, c).to(self.device) for c in captions]
        return collate_text(rows, self.padding, self.max_sequence_length)
