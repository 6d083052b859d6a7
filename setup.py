from setuptools import find_packages, setup

setup(
    name="av-link",
    version="0.1.0",
    description="AV-Link: video-to-audio and audio-to-video generation by linking frozen flow-matching DiTs with Fusion Blocks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"av_link": ["assets/**/*"]},
    python_requires=">=3.10",
    install_requires=[
        # 2.13.0 is the CPU build this project is developed and tested with; install it first.
        "torch>=2.4,<2.15",
        "diffusers>=0.35",
        "transformers>=4.46",
        "accelerate>=1.0",
        "safetensors>=0.4",
        "huggingface_hub>=0.25",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.5",
        "scipy>=1.11",
        "numpy>=1.24",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest>=7", "librosa>=0.10", "opencv-python-headless>=4.8", "matplotlib", "peft>=0.15"],
        "train": ["tensorboard", "peft>=0.15"],
        # LoRA loading/saving (pipe.load_lora_weights) and the training scripts' --lora_* options.
        "lora": ["peft>=0.15"],
        # librosa's onset detector and OpenCV's Farneback flow are what the reference metric
        # implementations use; we call them instead of re-deriving them.
        "eval": ["librosa>=0.10", "opencv-python-headless>=4.8", "matplotlib"],
    },
    entry_points={"console_scripts": ["av-link=av_link.cli:main"]},
)
