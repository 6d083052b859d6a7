"""One rank of the FSDP check in tests/test_train_open_backbones.py (torchrun, 2 CPU processes, gloo).

accelerate runs FSDP only on accelerators (on CPU it falls back to one process), so this wraps the Fusion objective
between the tiny Wan and LongCat backbones with torch's FSDP under the settings of an accelerate FSDP config
(its layer classes resolved as accelerate's plugin resolves them), then takes two optimizer steps from a latent cache.

    torchrun --nproc_per_node 2 tests/fsdp_cpu_worker.py CONFIG.yaml AUDIO_FOLDER VIDEO_FOLDER CACHE_DIR
"""

import functools
import sys

import torch
import torch.distributed as dist
import yaml
from accelerate.utils.dataclasses import get_module_class_from_name
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import ShardingStrategy
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from av_link import AVLinkFusionAdapter
from av_link.training.fusion_latent import load_linked
from av_link.training.latent_cache import CachedInputs, LatentCache, LatentCacheDataset
from av_link.training.objectives import FusionObjective, ObjectiveConfig


def main(config_file, audio, video, cache_dir):
    dist.init_process_group("gloo")
    with open(config_file) as f:
        fsdp = yaml.safe_load(f)["fsdp_config"]
    cache = LatentCache(cache_dir)
    identity = cache.identity
    _, _, _, families = load_linked(audio, video, torch.float32, video_fps=identity["video_fps"], height=identity["height"],
                                    width=identity["width"], max_sequence_length=identity["max_sequence_length"])
    views = tuple(families[m].backbone for m in ("audio", "video"))
    torch.manual_seed(0)
    adapter = AVLinkFusionAdapter.from_preset("tiny", audio_dim=views[0].hidden_size, video_dim=views[1].hidden_size,
                                              num_audio_layers=len(views[0].blocks), num_video_layers=len(views[1].blocks),
                                              time_rate=views[1].tokens_per_second)
    inputs = {m: CachedInputs(cache, m) for m in ("audio", "video")}
    objective = FusionObjective(adapter, views[0].model, views[1].model, inputs, "v2a", ObjectiveConfig(logit_mean=-1.0), views=views)
    for view in views:
        view.model.requires_grad_(False)
    classes = set()
    for name in fsdp["fsdp_transformer_layer_cls_to_wrap"].split(","):  # as accelerate's plugin resolves them
        cls = get_module_class_from_name(objective, name)
        if cls is None:
            raise ValueError(f"Could not find the transformer layer class {name} in the model.")
        classes.add(cls)
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    wrapped = FSDP(objective, auto_wrap_policy=functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=classes),
                   sharding_strategy=ShardingStrategy[fsdp["fsdp_sharding_strategy"]], use_orig_params=fsdp["fsdp_use_orig_params"],
                   sync_module_states=False, device_id=torch.device("cpu"))  # a GPU-only broadcast; ranks load equal weights
    units = sorted({type(m.module).__name__ for m in wrapped.modules() if isinstance(m, FSDP) and m is not wrapped})
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-3)
    dataset = LatentCacheDataset(cache)
    rank = dist.get_rank()
    for step in range(2):
        batch = dataset.collate_fn([dataset[(2 * step + rank) % len(dataset)]])
        loss = wrapped(batch, 0, step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"rank {rank} step {step} loss {loss.item():.6f} units {','.join(units)}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
