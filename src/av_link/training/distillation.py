"""Few-step students of the cross-modal samplers: guidance-distilled trajectory matching.

The teacher is a trained V2A or A2V pipeline sampled as shipped: 64 uniform Euler steps with classifier-free
guidance (two forward passes a step: the fused model and the generated backbone alone). The student samples
on a K-step sub-grid of the teacher's (K = 8: every 8th teacher time) with one forward pass a step and no
guidance. It is trained to make each of its Euler steps land where the teacher's 64/K guided steps land:

    teacher: x_0 (noise) -> x_1 -> ... -> x_K (data), the teacher's states at the student's grid times t_k
    loss:    || v_student(x_k, t_k) - (x_{k+1} - x_k) / (t_{k+1} - t_k) ||^2,   k uniform in 0..K-1

with the conditioning input (noised once to the pipeline's fixed time, as the sampler does) and the prompts the
teacher saw. The teacher's trajectories are generated once and cached on disk (:mod:`.trajectories`).

Why this method (issue 12, item 4):

- Guidance is distilled in for free: the targets are the guided teacher's displacements, so the student needs
  neither the unconditional branch nor a guidance input, halving the forward passes on top of the 8x fewer steps.
- It is the cheapest to train within a 1-hour CPU budget. Each training step is one student forward and backward
  pass on a cached (state, target) pair; the teacher runs only to make the trajectories, which are reused in
  every epoch and survive an interruption. Progressive distillation (64 -> 32 -> ... -> 8) needs log2(8) = 3
  rounds, each with teacher passes inside the training step; consistency and shortcut models need the student
  (or an EMA copy) as its own target and many more steps to converge; a reflow round trains on straight lines
  between noise and the teacher's output, which an 8-step Euler sampler still only follows approximately.
  Matching the teacher's own segments on the student's grid is what the student is sampled with, exactly.
- It changes only small parts, so a student ships beside its teacher: the Fusion Blocks (initialised from the
  teacher's) and a LoRA on the generated modality's backbone (zero-initialised, so the student starts as the
  teacher's conditional branch). The backbones and text encoder stay frozen and are shared with the teacher's
  folder (`_components_from`); the LoRA is fused in when the student loads (`_fused_lora`, see
  :mod:`av_link.pipelines.folders`).

The student's grid (`sigmas`, diffusers' convention), `num_inference_steps = K` and `guidance_scale = 1` are stored
in its pipeline config, so `pipe(video=...)` samples as it was trained; its scheduler is a plain
`FlowMatchEulerScheduler` (no shift), since the grid already holds the teacher's shifted times.
"""

import torch
import torch.nn.functional as F

from ..models.joint import OTHER, joint_forward
from .randomness import per_sample_rand, sample_generator


def student_sigmas(teacher_sigmas, num_student_steps: int) -> list[float]:
    """Every `len / K`-th sigma of the teacher's grid (which ends with 0): K + 1 values from 1 down to 0."""
    sigmas = [float(s) for s in teacher_sigmas]
    num_teacher_steps = len(sigmas) - 1
    if num_student_steps < 1 or num_teacher_steps % num_student_steps:
        raise ValueError(f"the student's steps ({num_student_steps}) must divide the teacher's ({num_teacher_steps})")
    if sigmas[-1] != 0.0:
        raise ValueError(f"the teacher's grid must end at sigma 0 (data), got {sigmas[-1]}")
    return sigmas[:: num_teacher_steps // num_student_steps]


def cross_modal_velocity(audio_model, video_model, adapter, generated: str, x, t, conditioning, conditioning_time,
                         text, text_mask=None, conditioning_text=None, conditioning_text_mask=None) -> torch.Tensor:
    """The velocity of the generated modality from the fused model: the cross-modal sampler's conditional branch
    (and a student's only one). `conditioning` is the noisy conditioning input, or its `embed_prefix` state."""
    inputs, times = {generated: x, OTHER[generated]: conditioning}, {generated: t, OTHER[generated]: conditioning_time}
    texts = {generated: (text, text_mask), OTHER[generated]: (conditioning_text, conditioning_text_mask)}
    out = joint_forward(
        audio_model, video_model, adapter, inputs["audio"], inputs["video"], times["audio"], times["video"],
        texts["audio"][0], texts["video"][0], texts["audio"][1], texts["video"][1],
        return_audio=generated == "audio", return_video=generated == "video",
    )
    return getattr(out, generated)


def segment_targets(states: torch.Tensor, sigmas: torch.Tensor, segment: torch.Tensor):
    """For trajectories `states` (B, K + 1, ...) on the grid `sigmas` (K + 1,) and one segment index per row:
    the start state, its av-link time `t = 1 - sigma`, and the teacher's mean velocity over the segment."""
    rows = torch.arange(states.shape[0], device=states.device)
    start, end = states[rows, segment], states[rows, segment + 1]
    sigma, sigma_next = sigmas[segment], sigmas[segment + 1]
    step = (sigma - sigma_next).reshape(-1, *([1] * (start.ndim - 1)))  # t_{k+1} - t_k
    return start, 1 - sigma, (end - start) / step


class DistillationObjective(torch.nn.Module):
    """The student (adapter + backbones, LoRA inside) wrapped so that `forward(batch, epoch, step)` is the loss on
    a batch of :class:`~av_link.training.trajectories.TrajectoryDataset` items; which segment of each trajectory
    is trained is a function of (seed, epoch, trajectory), so resumed runs repeat it exactly."""

    def __init__(self, adapter, audio_model, video_model, encode_text, generated: str, conditioning_time: float,
                 sigmas, seed: int = 0):
        super().__init__()
        if generated not in OTHER:
            raise ValueError(f"generated must be audio or video, got {generated!r}")
        self.adapter, self.audio_model, self.video_model = adapter, audio_model, video_model
        self.encode_text, self.generated, self.conditioning_time, self.seed = encode_text, generated, conditioning_time, seed
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float64), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.audio_model.eval()  # frozen (apart from a LoRA) and in eval mode, as when sampling
        self.video_model.eval()
        return self

    def segments(self, indices, epoch: int) -> torch.Tensor:
        u = per_sample_rand([sample_generator(self.seed, epoch, int(i), "distill-segment") for i in indices])
        return (u * (len(self.sigmas) - 1)).long().clamp(max=len(self.sigmas) - 2)

    def velocity(self, x, t, conditioning, captions, conditioning_captions) -> torch.Tensor:
        text, mask = self.encode_text(list(captions))
        conditioning_text, conditioning_mask = self.encode_text(list(conditioning_captions))
        return cross_modal_velocity(self.audio_model, self.video_model, self.adapter, self.generated, x, t, conditioning,
                                    self.conditioning_time, text, mask, conditioning_text, conditioning_mask)

    def forward(self, batch: dict, epoch: int, step: int) -> torch.Tensor:
        states = batch["states"]
        segment = self.segments(batch["index"], epoch).to(states.device)
        x, t, target = segment_targets(states, self.sigmas.to(states.device), segment)
        prediction = self.velocity(x, t.to(states.dtype), batch["conditioning"], batch["caption"], batch["conditioning_caption"])
        return F.mse_loss(prediction.float(), target.float())
