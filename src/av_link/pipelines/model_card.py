"""Hub model cards for saved pipelines (huggingface_hub's ModelCard, written next to model_index.json)."""

import os

from huggingface_hub import ModelCard, ModelCardData

TAGS = {
    "AVLinkV2APipeline": ["video-to-audio"],
    "AVLinkA2VPipeline": ["audio-to-video"],
    "AVLinkTextToAudioPipeline": ["text-to-audio"],
    "AVLinkTextToVideoPipeline": ["text-to-video"],
}
SAMPLING_KEYS = ("conditioning_timestep", "num_inference_steps", "guidance_scale", "height", "width", "video_fps", "clip_seconds",
                 "window_overlap_seconds", "max_sequence_length", "max_batch_tokens", "guidance_start", "guidance_stop")


def _size(module) -> str:
    params = sum(p.numel() for p in module.parameters()) if hasattr(module, "parameters") else 0
    return f"{params / 1e6:.2f}M parameters" if params else "no weights"


def model_card_text(pipe, training_info: dict | None = None) -> str:
    name = type(pipe).__name__
    lines = [
        f"# {name}",
        "",
        "An [av-link](https://arxiv.org/abs/2412.15191) pipeline: frozen flow-matching audio and video DiTs"
        " linked by Fusion Blocks (AV-Link, Haji-Ali et al. 2024).",
        "",
        "```python",
        "import av_link",
        f"pipe = av_link.{name}.from_pretrained(\"<this folder or repo id>\")",
        "```",
        "",
        "## Components",
        "",
        "| component | class | size |",
        "| --- | --- | --- |",
    ]
    for key in pipe.components:
        module = getattr(pipe, key)
        if module is not None:
            lines.append(f"| {key} | `{type(module).__name__}` | {_size(module)} |")
    base_models = pipe.config.get("base_models") or {}
    if base_models:
        lines += ["", "## Base models", "", "Frozen backbones, VAEs and text encoders taken from these diffusers pipelines:", "",
                  "| modality | base model | transformer |", "| --- | --- | --- |"]
        lines += [f"| {m} | {name} | `{type(getattr(pipe, f'{m}_transformer', None)).__name__}` |" for m, name in base_models.items()]
    lines += ["", "## Sampling defaults", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {pipe.config[k]} |" for k in SAMPLING_KEYS if k in pipe.config]
    lines += ["", "## Training", ""]
    if training_info:
        lines += [f"- **{k}**: {v}" for k, v in training_info.items()]
    else:
        lines.append("Not recorded for this checkpoint.")
    return "\n".join(lines) + "\n"


def read_training_info(path) -> dict | None:
    """The "## Training" facts of a model card written by `write_model_card` (None if it records none)."""
    training = ModelCard.load(path).text.split("## Training", 1)[-1]
    facts = dict(line[4:].split("**: ", 1) for line in training.splitlines() if line.startswith("- **") and "**: " in line)
    return facts or None


def write_model_card(pipe, save_directory, training_info: dict | None = None) -> ModelCard:
    hub_ids = [name for name in (pipe.config.get("base_models") or {}).values() if "/" in name]  # not local folder names
    data = ModelCardData(
        base_model=hub_ids or None,
        library_name="av-link",
        license="apache-2.0",
        tags=["av-link", "diffusers", "flow-matching", *TAGS.get(type(pipe).__name__, [])],
        pipeline_tag=TAGS.get(type(pipe).__name__, [None])[0],
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{model_card_text(pipe, training_info)}")
    card.save(os.path.join(save_directory, "README.md"))
    return card
