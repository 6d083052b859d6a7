"""Does a V2A or A2V adapter use its conditioning input's *timing*, its content, or neither? A cheap check
before any sampling.

    python scripts/fusion_conditioning_dependence.py --pipeline runs/v2/v2a --data runs/heldout/id
    python scripts/fusion_conditioning_dependence.py --pipeline runs/v2/a2v --run runs/v2/a2v   # every checkpoint-N

The Fusion Block training loss (paper Eq. 5, fixed seeds, no text dropout) on held-out windows, with
  true     the clip's own conditioning input (the video for V2A, the audio for A2V),
  shifted  the same input rolled in time by --shift seconds (same content, wrong timing),
  other    another clip's input (wrong content and timing),
  none     an untrained adapter (its zero reinjection gates leave the frozen generating backbone alone).
An adapter that times its output from the input has true < shifted; one that reads only what is in the
input (the sound's kind) has shifted ~ true < other; one that ignores it has all three equal, and whatever
it gains over "none" it gains as extra capacity for the generated modality. docs/synthhits.md has figures.
"""
import argparse
import glob
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file

from av_link import AVLinkA2VPipeline, AVLinkFusionAdapter, AVLinkV2APipeline
from av_link.data.dataset import AVClipDataset, av_clip_collate
from av_link.training.objectives import ObjectiveConfig, fusion_loss
from av_link.training.text import FrozenTextEncoder


def adapters(args, pipe):
    """(name, adapter) pairs: the pipeline's own adapter, or the adapter of every checkpoint in --run."""
    if not args.run:
        yield args.pipeline, pipe.fusion_adapter
        return
    for ckpt in sorted(glob.glob(os.path.join(args.run, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1])):
        adapter = AVLinkFusionAdapter.from_config(pipe.fusion_adapter.config)
        state = load_file(os.path.join(ckpt, "model.safetensors"))  # the training objective's state: adapter.* keys
        adapter.load_state_dict({k.removeprefix("adapter."): v for k, v in state.items() if k.startswith("adapter.")})
        yield ckpt, adapter.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True, help="a V2A or A2V pipeline folder (backbones, front end, adapter config)")
    parser.add_argument("--run", default=None, help="a training output folder: score each checkpoint-N in it")
    parser.add_argument("--data", required=True, help="held-out clips (metadata.jsonl)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--clip_seconds", type=float, default=2.0)
    parser.add_argument("--shift", type=float, default=0.75, help="seconds the 'shifted' input is rolled by")
    parser.add_argument("--repeats", type=int, default=2, help="noise/time draws per window")
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args()

    with open(os.path.join(args.pipeline, "model_index.json")) as f:
        task = {"AVLinkV2APipeline": "v2a", "AVLinkA2VPipeline": "a2v"}.get(json.load(f)["_class_name"])
    if task is None:
        raise SystemExit(f"{args.pipeline} is not a V2A or A2V pipeline folder")
    pipe = (AVLinkV2APipeline if task == "v2a" else AVLinkA2VPipeline).from_pretrained(args.pipeline)
    fps = pipe.video_transformer.config.frame_rate
    dataset = AVClipDataset(args.data, fps=fps, height=pipe.config.height, width=pipe.config.width,
                            mel_frontend=pipe.audio_frontend, clip_seconds=args.clip_seconds, random_crop=True,
                            modalities=("audio", "video"), cache_dir=args.cache_dir, seed=5, return_waveform=False)
    items = [dataset[i] for i in range(min(args.clips, len(dataset)))]
    batches = [av_clip_collate(items[s:s + 16]) for s in range(0, len(items), 16)]
    encode = FrozenTextEncoder(pipe.text_encoder, pipe.tokenizer)
    cfg = ObjectiveConfig(logit_mean=-1.0, logit_std=1.0, generated_text_dropout=0.0, conditioning_text_dropout=0.0)
    # the conditioning signal in the batch, its time axis, and frames per second along it
    key, axis, rate = ("video", 2, fps) if task == "v2a" else ("mel", 1, pipe.audio_frontend.frames_per_second)
    shift = round(args.shift * rate)
    untrained = AVLinkFusionAdapter.from_config(pipe.fusion_adapter.config).eval()

    def loss(adapter, batch, signal, epoch):
        with torch.no_grad():
            return float(fusion_loss(pipe.audio_transformer, pipe.video_transformer, adapter, encode,
                                     {**batch, key: signal}, task, cfg, epoch))

    rows = {}
    for name, adapter in adapters(args, pipe):
        scores = {"true": [], "shifted": [], "other": [], "none": []}
        for epoch in range(args.repeats):
            for b in batches:
                x = b[key]  # video (B, C, F, H, W) or mel (B, T, n_mels)
                scores["true"].append(loss(adapter, b, x, epoch))
                scores["shifted"].append(loss(adapter, b, torch.roll(x, shift, dims=axis), epoch))
                scores["other"].append(loss(adapter, b, torch.roll(x, 1, dims=0), epoch))
                scores["none"].append(loss(untrained, b, x, epoch))
        rows[name] = {k: round(float(np.mean(s)), 4) for k, s in scores.items()}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


if __name__ == "__main__":
    main()
