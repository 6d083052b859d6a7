"""Teacher trajectories for few-step distillation (:mod:`.distillation`), made once and cached on disk.

A cache folder holds `config.json` (how the trajectories were made, the student's grid included) and shards
`shard-00000.safetensors`, ... of `shard_size` trajectories each: the teacher's states at the student's grid
times (`states`, `(B, K + 1, ...)`, noise first, the teacher's output last), the noisy conditioning input
(`conditioning`) and, in the metadata, the prompts both modalities saw. A shard is written to a temporary file
and renamed when complete, so an interrupted run keeps every finished shard and makes only the missing ones;
processes split the shards between them.

Trajectory j is made from clip `j % len(dataset)` cropped as in epoch `j // len(dataset)`; its noises and prompt
dropout are functions of (seed, j), so a shard made again is the same shard.
"""

import json
import math
import os
from dataclasses import asdict, dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..models.joint import embed_prefix
from ..pipelines.pipeline_av_link_base import guided_steps, set_scheduler_timesteps
from ..schedulers.flow_time import noisy_sample, scheduler_output, time_from_timestep
from .distillation import OTHER, cross_modal_velocity, student_sigmas
from .objectives import drop_captions
from .randomness import per_sample_randn, sample_generator

CONFIG = "config.json"
# Fields added to TrajectoryConfig after caches were made, with the value those caches were made with.
CACHE_FIELDS_ADDED = {"guidance_start": 0.0, "guidance_stop": 1.0}


@dataclass
class TrajectoryConfig:
    num_trajectories: int = 256
    shard_size: int = 16  # trajectories per file, and the teacher's batch size
    num_teacher_steps: int = 64
    guidance_scale: float = 5.0
    guidance_start: float = 0.0  # the guided steps, as the pipeline counts them (pipeline_av_link_base.guided_steps)
    guidance_stop: float = 1.0
    num_student_steps: int = 8
    conditioning_time: float = 0.96
    generated_text_dropout: float = 0.25  # trajectories with an empty prompt teach the student the empty-prompt use too
    conditioning_text_dropout: float = 0.2
    seed: int = 0


def shard_path(cache_dir: str, shard: int) -> str:
    return os.path.join(cache_dir, f"shard-{shard:05d}.safetensors")


def num_shards(cfg: TrajectoryConfig) -> int:
    return math.ceil(cfg.num_trajectories / cfg.shard_size)


def teacher_sigmas(pipe, num_steps: int) -> list[float]:
    """The sigmas (ending with 0) `pipe`'s scheduler steps through in `num_steps` steps on the paper grid."""
    set_scheduler_timesteps(pipe.scheduler, num_steps, None, "cpu")
    return pipe.scheduler.sigmas.tolist()


def prepare_cache(cache_dir: str, cfg: TrajectoryConfig, teacher_sigmas) -> dict:
    """Create the cache folder, or check that the one there was made with the same settings; returns its config."""
    wanted = {**asdict(cfg), "sigmas": student_sigmas(teacher_sigmas, cfg.num_student_steps)}
    path = os.path.join(cache_dir, CONFIG)
    if os.path.isfile(path):
        with open(path) as f:
            found = {**CACHE_FIELDS_ADDED, **json.load(f)}
        if found != wanted:
            changed = sorted(k for k in wanted if found.get(k) != wanted[k])
            raise ValueError(f"the trajectory cache {cache_dir} was made with other settings ({', '.join(changed)}): "
                             f"pass another --trajectory_dir, or delete it")
        return found
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(wanted, f, indent=2)
    os.replace(path + ".tmp", path)
    return wanted


def read_cache_config(cache_dir: str) -> dict:
    with open(os.path.join(cache_dir, CONFIG)) as f:
        return json.load(f)


@torch.no_grad()
def teacher_trajectory(pipe, noise, conditioning, conditioning_time: float, text, conditioning_text, negative_text,
                       num_steps: int, guidance_scale: float, stride: int,
                       guidance_span: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Sample like `pipe` (its scheduler on the paper grid, guidance with the generated backbone alone and the
    negative text, on the steps of `guidance_span` as the pipeline's `guidance_start` / `guidance_stop`) from
    `noise`, and return every `stride`-th state: `(B, num_steps / stride + 1, ...)`."""
    first, stop = guided_steps(*guidance_span, num_steps)
    generated = pipe.generated
    cond_model, gen_model = pipe.transformer_for(OTHER[generated]), pipe.transformer_for(generated)
    prefix = embed_prefix(cond_model, pipe.fusion_adapter, OTHER[generated], conditioning, conditioning_time, *conditioning_text)
    timesteps = set_scheduler_timesteps(pipe.scheduler, num_steps, None, noise.device)
    num_train_timesteps = pipe.scheduler.config.get("num_train_timesteps", 1000)
    x, states = noise, [noise]
    for i, timestep in enumerate(timesteps):
        t = time_from_timestep(timestep, num_train_timesteps).expand(x.shape[0])
        v = cross_modal_velocity(pipe.audio_transformer, pipe.video_transformer, pipe.fusion_adapter, generated, x, t,
                                 prefix, conditioning_time, *text)
        if guidance_scale > 1 and first <= i < stop:
            v_uncond = gen_model(x, t, *negative_text).sample
            v = v_uncond + guidance_scale * (v - v_uncond)
        x = pipe.scheduler.step(scheduler_output(v), timestep, x, return_dict=False)[0].to(noise.dtype)
        if (i + 1) % stride == 0:
            states.append(x)
    return torch.stack(states, dim=1)


def generated_shape(pipe, seconds: float) -> tuple:
    """The shape the pipeline gives the generated modality for one conditioning input of `seconds`."""
    if pipe.generated == "audio":
        return max(1, round(seconds * pipe.audio_fps)), pipe.audio_transformer.config.in_channels
    return pipe.video_transformer.config.in_channels, max(1, round(seconds * pipe.video_fps)), pipe.config.height, pipe.config.width


def make_shard(pipe, dataset, cfg: TrajectoryConfig, encode_text, shard: int) -> dict:
    """Trajectories `shard * shard_size ...` of the cache: the tensors and metadata of one shard file."""
    generated, conditioning = pipe.generated, OTHER[pipe.generated]
    device, dtype = pipe.transformer_for(generated).device, pipe.transformer_for(generated).dtype
    indices = list(range(shard * cfg.shard_size, min((shard + 1) * cfg.shard_size, cfg.num_trajectories)))
    items = [dataset.get_item(j % len(dataset), epoch=j // len(dataset)) for j in indices]
    signal = torch.stack([item["video" if conditioning == "video" else "mel"] for item in items]).to(device, dtype)

    def streams(name):
        return [sample_generator(cfg.seed, 0, j, name) for j in indices]

    noisy = noisy_sample(signal, per_sample_randn(signal.shape[1:], streams("distill-conditioning-noise"), device, dtype),
                         cfg.conditioning_time)
    seconds = dataset.num_frames / dataset.config.fps if conditioning == "video" else dataset.num_samples / dataset.config.sample_rate
    noise = per_sample_randn(generated_shape(pipe, seconds), streams("distill-noise"), device, dtype)
    captions = drop_captions([item[f"{generated}_caption"] for item in items], cfg.generated_text_dropout,
                             streams("distill-text"))
    conditioning_captions = drop_captions([item[f"{conditioning}_caption"] for item in items], cfg.conditioning_text_dropout,
                                          streams("distill-conditioning-text"))
    states = teacher_trajectory(pipe, noise, noisy, cfg.conditioning_time, encode_text(captions), encode_text(conditioning_captions),
                                encode_text([""] * len(indices)), cfg.num_teacher_steps, cfg.guidance_scale,
                                cfg.num_teacher_steps // cfg.num_student_steps, (cfg.guidance_start, cfg.guidance_stop))
    metadata = {"indices": json.dumps(indices), "captions": json.dumps(captions), "conditioning_captions": json.dumps(conditioning_captions)}
    return {"tensors": {"states": states.float().cpu().contiguous(), "conditioning": noisy.float().cpu().contiguous()}, "metadata": metadata}


def generate_trajectories(cache_dir: str, pipe, dataset, cfg: TrajectoryConfig, encode_text, process_index: int = 0,
                          num_processes: int = 1, progress: bool = True) -> int:
    """Make this process's missing shards (`prepare_cache` first); returns how many it made."""
    todo = [s for s in range(num_shards(cfg))[process_index::num_processes] if not os.path.isfile(shard_path(cache_dir, s))]
    for shard in tqdm(todo, desc="teacher trajectories", disable=not progress or not todo):
        made = make_shard(pipe, dataset, cfg, encode_text, shard)
        path = shard_path(cache_dir, shard)
        save_file(made["tensors"], path + ".tmp", metadata=made["metadata"])
        os.replace(path + ".tmp", path)
    return len(todo)


class TrajectoryDataset(torch.utils.data.Dataset):
    """The cached trajectories as training items: `states` (K + 1, ...), `conditioning`, `caption`,
    `conditioning_caption` and `index` (the trajectory's number). Tensors are read from the shard files on access."""

    def __init__(self, cache_dir: str):
        self.cache_dir, self.config = cache_dir, read_cache_config(cache_dir)
        self.shard_size, self.sigmas = self.config["shard_size"], self.config["sigmas"]
        missing = [s for s in range(math.ceil(len(self) / self.shard_size)) if not os.path.isfile(shard_path(cache_dir, s))]
        if missing:
            raise ValueError(f"the trajectory cache {cache_dir} lacks shards {missing}: generate them first")
        self.captions = {}

    def __len__(self) -> int:
        return self.config["num_trajectories"]

    def __getitem__(self, index: int) -> dict:
        shard, row = divmod(int(index), self.shard_size)
        with safe_open(shard_path(self.cache_dir, shard), framework="pt") as f:
            if shard not in self.captions:
                meta = f.metadata()
                self.captions[shard] = json.loads(meta["captions"]), json.loads(meta["conditioning_captions"])
            states, conditioning = f.get_slice("states")[row], f.get_slice("conditioning")[row]
        captions, conditioning_captions = self.captions[shard]
        return {"states": states, "conditioning": conditioning, "caption": captions[row],
                "conditioning_caption": conditioning_captions[row], "index": int(index)}
