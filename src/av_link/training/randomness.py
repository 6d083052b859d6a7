"""Per-sample random streams: noise, flow times and prompt dropout are a pure function of
(seed, epoch, dataset index), so a run gives the same numbers however its batches are split over
processes or interrupted and resumed."""

import hashlib

import torch


def sample_generator(seed: int, epoch: int, index: int, stream: str, device="cpu") -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{epoch}/{index}/{stream}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def per_sample_randn(shape_per_sample, seeds: list[torch.Generator], device, dtype) -> torch.Tensor:
    return torch.stack([torch.randn(shape_per_sample, generator=g) for g in seeds]).to(device=device, dtype=dtype)


def per_sample_rand(seeds: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.rand((), generator=g) for g in seeds])


def per_sample_logit_normal(seeds: list[torch.Generator], mean: float, std: float) -> torch.Tensor:
    return torch.sigmoid(mean + std * torch.stack([torch.randn((), generator=g) for g in seeds]))
