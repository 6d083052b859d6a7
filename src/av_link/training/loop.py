"""The accelerate training loop shared by backbone and Fusion Block training.

Exact resumption: data order is a seeded permutation per epoch, crops and every random draw of the
objective are functions of (seed, epoch, sample index), and a checkpoint records the step, the epoch
and how many batches of it were consumed; accelerate stores model, optimizer, scheduler and every
rank's RNG state. Killing a run after a checkpoint and resuming gives the same weights, bit for bit
on a CPU.
"""

import logging
import os
import time
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .checkpointing import (
    _fault_injection,
    frozen_fingerprint,
    load_checkpoint,
    register_checkpoint_hooks,
    resolve_resume,
    save_checkpoint,
)

logger = logging.getLogger("av_link.training")


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the same on every rank, reproducible on resume."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def make_accelerator(args, find_unused_parameters: bool = False) -> Accelerator:
    """`find_unused_parameters` for objectives that skip parts of the trained module (V2A never reads the
    last Fusion Block's video MLP, so DDP must not wait for its gradient)."""
    report_to = None if args.report_to == "none" else args.report_to
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("tensorboard is not installed (pip install av-link[train]); logging to the console only")
            report_to = None
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")),
    )
    set_seed(args.seed)
    return accelerator


def train(
    args,
    accelerator: Accelerator,
    objective: torch.nn.Module,
    trainable: torch.nn.Module,
    dataset,
    collate_fn: Callable | None = None,
    run_name: str = "av-link",
) -> torch.nn.Module:
    """Optimise `trainable` (a submodule of `objective`; everything else is frozen) on `objective(batch,
    epoch, step)`. Returns the unwrapped objective, with EMA weights copied in when `--use_ema`."""
    params = [p for p in trainable.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    if len(dataset) < args.train_batch_size * accelerator.num_processes:
        raise ValueError(f"the dataset has {len(dataset)} usable clips, fewer than one global batch "
                         f"({args.train_batch_size} x {accelerator.num_processes} processes)")
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon, weight_decay=args.adam_weight_decay)
    sampler = EpochShuffleSampler(len(dataset), args.seed)
    loader = DataLoader(dataset, batch_size=args.train_batch_size, sampler=sampler, drop_last=True,
                        num_workers=args.dataloader_num_workers, collate_fn=collate_fn or getattr(dataset, "collate_fn", None))
    # accelerate steps a prepared scheduler once per process per optimizer step.
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    name_of = {id(p): n for n, p in objective.named_parameters()}
    names = [name_of[id(p)] for p in params]
    frozen = frozen_fingerprint(objective, params)  # before prepare: whole, unsharded modules on every rank
    objective, optimizer, loader, lr_scheduler = accelerator.prepare(objective, optimizer, loader, lr_scheduler)
    ema = EMAModel(params, decay=args.ema_decay) if args.use_ema else None
    register_checkpoint_hooks(accelerator, params, names, frozen, ema)
    fsdp_trained = (objective, optimizer, names) if accelerator.distributed_type == DistributedType.FSDP else None

    step, epoch, consumed = 0, 0, 0
    resume = resolve_resume(args.output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and resume is None:
        accelerator.print(f"no checkpoint in {args.output_dir}; starting a new run")
    if resume:
        state = load_checkpoint(accelerator, resume, fsdp_trained)
        step, epoch, consumed = state["step"], state["epoch"], state["batches_consumed"]
        accelerator.print(f"resumed from {resume} at step {step}")
    if accelerator.is_main_process:
        accelerator.init_trackers(run_name, config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    batches_per_epoch = len(loader)
    if batches_per_epoch < args.gradient_accumulation_steps:
        raise ValueError("an epoch holds fewer batches than --gradient_accumulation_steps")
    progress = tqdm(total=args.max_train_steps, initial=step, desc="training", disable=not accelerator.is_local_main_process)
    nonfinite_in_a_row, window_start, window_samples = 0, time.perf_counter(), 0
    global_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    objective.train()
    while step < args.max_train_steps:
        for holder in (dataset, loader):
            if hasattr(holder, "set_epoch"):
                holder.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, consumed) if consumed else loader
        for batch in batches:
            consumed += 1
            with accelerator.accumulate(objective):
                loss = objective(batch, epoch, step)
                finite = bool(accelerator.gather(loss.detach().float().reshape(1)).isfinite().all())
                if finite:
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, args.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            step += 1
            window_samples += global_batch
            if finite:
                nonfinite_in_a_row = 0
                if ema is not None:
                    ema.step(params)
            else:
                nonfinite_in_a_row += 1
                logger.warning(f"step {step}: non-finite loss, update skipped ({nonfinite_in_a_row} in a row)")
                if nonfinite_in_a_row >= args.max_nonfinite_steps:
                    raise RuntimeError(f"stopping: {nonfinite_in_a_row} non-finite losses in a row at step {step}; "
                                       "lower the learning rate or check the data")
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_train_steps:
                elapsed = time.perf_counter() - window_start
                logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "samples_per_second": window_samples / elapsed}
                progress.set_postfix(loss=f"{logs['loss']:.4f}", sps=f"{logs['samples_per_second']:.1f}")
                accelerator.log(logs, step=step)
                window_start, window_samples = time.perf_counter(), 0
            if consumed == batches_per_epoch:
                epoch, consumed = epoch + 1, 0
            if step % args.checkpointing_steps == 0 or step == args.max_train_steps:
                save_checkpoint(accelerator, args.output_dir, step, {"step": step, "epoch": epoch, "batches_consumed": consumed},
                                args.checkpoints_total_limit, fsdp_trained)
            _fault_injection("AVLINK_FAULT_KILL_AFTER_STEP", step)
            if step >= args.max_train_steps or consumed == 0:
                break
        else:
            epoch, consumed = epoch + 1, 0
    progress.close()
    accelerator.wait_for_everyone()
    check_replicas_agree(accelerator, params)
    unwrapped = accelerator.unwrap_model(objective)
    if ema is not None:
        ema.copy_to(params)
    # Drop the DDP wrapper, whose reducer talks to the process group, while the group still exists: freed only when
    # this function returned, after `end_training` destroyed the group, it sometimes blocked a rank forever (gloo).
    objective = optimizer = loader = lr_scheduler = batches = None  # batches: unset if no step ran
    accelerator.free_memory()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return unwrapped



def check_replicas_agree(accelerator: Accelerator, params) -> None:
    """Every rank must end with the same trained weights; a cheap fingerprint catches a silent divergence."""
    if accelerator.num_processes == 1 or accelerator.distributed_type == DistributedType.FSDP:  # FSDP ranks hold shards
        return
    with torch.no_grad():
        fingerprint = torch.stack([sum(p.detach().double().sum() for p in params), sum(p.detach().double().abs().sum() for p in params)])
    every = accelerator.gather(fingerprint.to(accelerator.device).reshape(1, 2))
    if not torch.equal(every, every[:1].expand_as(every)):
        raise RuntimeError(f"trained weights differ across ranks: fingerprints {every.tolist()}")
    accelerator.print(f"all {accelerator.num_processes} ranks hold identical trained weights")
