"""One rank of the FSDP check in tests/test_train_open_backbones.py (torchrun, 2 CPU processes, gloo).

accelerate runs FSDP only on accelerators (on CPU it falls back to one process), so this wraps the Fusion objective
between the tiny Wan and LongCat backbones with torch's FSDP under the settings of an accelerate FSDP config
(its layer classes resolved as accelerate's plugin resolves them), then takes two optimizer steps from a latent cache.

    torchrun --nproc_per_node 2 tests/fsdp_cpu_worker.py CONFIG.yaml AUDIO_FOLDER VIDEO_FOLDER CACHE_DIR [CHECKPOINT_DIR]

With CHECKPOINT_DIR it then saves the trained state (training/fsdp_checkpoint.py), takes a third step and loads the
checkpoint back: the adapter and its optimizer state must return exactly to the saved values.
"""

import functools
import sys

import torch
import torch.distributed as dist
import yaml
from accelerate import Accelerator
from accelerate.utils.dataclasses import get_module_class_from_name
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import ShardingStrategy
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from av_link import AVLinkFusionAdapter
from av_link.training.checkpointing import load_checkpoint, save_checkpoint
from av_link.training.fusion_latent import load_linked
from av_link.training.latent_cache import CachedInputs, LatentCache, LatentCacheDataset
from av_link.training.objectives import FusionObjective, ObjectiveConfig


def full_trained(wrapped, optimizer, names):
    """The trained parameters and their AdamW moments, gathered whole on every rank (tiny models)."""
    model, optim = get_state_dict(wrapped, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=False))
    return ({n: model[n].clone() for n in names},
            {n: {k: v.clone() for k, v in optim["state"][n].items() if torch.is_tensor(v)} for n in names})


def main(config_file, audio, video, cache_dir, checkpoint_dir=None):
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
    names = [n for n, p in objective.named_parameters() if p.requires_grad]
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
    def step(step):
        batch = dataset.collate_fn([dataset[(2 * step + rank) % len(dataset)]])
        loss = wrapped(batch, 0, step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    for i in range(2):
        loss = step(i)
        print(f"rank {rank} step {i} loss {loss.item():.6f} units {','.join(units)}", flush=True)
    if checkpoint_dir:
        # through the training loop's own save / load (accelerate keeps RNG states, fsdp_checkpoint the adapter)
        accelerator = Accelerator(cpu=True)
        trained = (wrapped, optimizer, names)
        saved = save_checkpoint(accelerator, checkpoint_dir, 2, {"step": 2, "epoch": 0, "batches_consumed": 2}, None, trained)
        saved_params, saved_moments = full_trained(wrapped, optimizer, names)
        step(2)
        moved = full_trained(wrapped, optimizer, names)[0]
        assert load_checkpoint(accelerator, saved, trained)["step"] == 2
        params, moments = full_trained(wrapped, optimizer, names)
        restored = all(torch.equal(params[n], saved_params[n]) for n in names) and all(
            torch.equal(moments[n][k], saved_moments[n][k]) for n in names for k in saved_moments[n])
        changed = any(not torch.equal(moved[n], saved_params[n]) for n in names)
        print(f"rank {rank} checkpoint trained {len(names)} of {sum(1 for _ in objective.named_parameters())} "
              f"changed {changed} restored {restored}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
