"""Build tiny AV-Link components and run the joint model: a smoke demo that needs no download."""

import torch

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer, FlowMatchEulerScheduler, joint_forward
from av_link.schedulers import noisy_sample, scheduler_output, time_from_timestep

torch.manual_seed(0)
audio_model = AVLinkAudioTransformer.from_preset("tiny").eval()
video_model = AVLinkVideoTransformer.from_preset("tiny").eval()
adapter = AVLinkFusionAdapter.from_preset("tiny").eval()
scheduler = FlowMatchEulerScheduler()

seconds = 2.0
video = torch.rand(1, 3, int(seconds * video_model.config.frame_rate), 32, 32) * 2 - 1  # conditioning video in [-1, 1]
text = torch.randn(1, 8, audio_model.config.text_dim)  # stands in for T5 embeddings
noisy_video = noisy_sample(video, torch.randn_like(video), 0.96)  # V2A: conditioning video at t_v = 0.96 (av-link time)
audio = torch.randn(1, int(seconds * audio_model.config.frame_rate), audio_model.config.in_channels)

scheduler.set_timesteps(8)
with torch.no_grad():
    for timestep in scheduler.timesteps:  # diffusers' convention: sigma * 1000, from noise to data
        t = time_from_timestep(timestep)  # the models take av-link's time t = 1 - sigma
        velocity = joint_forward(audio_model, video_model, adapter, audio, noisy_video, t, 0.96, text, text, return_video=False).audio
        audio = scheduler.step(scheduler_output(velocity), timestep, audio).prev_sample
print(f"V2A (untrained tiny models): video {tuple(video.shape)} -> mel {tuple(audio.shape)} "
      f"({audio.shape[1] / audio_model.config.frame_rate:.2f} s)")
