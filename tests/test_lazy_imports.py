"""`import av_link` and `av-link --help` stay cheap: torch, diffusers and transformers load only when used."""

import json
import os
import subprocess
import sys

import pytest

import av_link
from av_link.commands import BUILTIN_MODULES, SUBCOMMANDS

HEAVY = ("torch", "diffusers", "transformers")


def _fresh_python(code: str) -> dict:
    """Run `code` in a new interpreter; it prints one JSON line last."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_of_every_subcommand_imports_no_heavy_library():
    from av_link.cli import build_parser

    build_parser()
    commands = list(SUBCOMMANDS)
    assert len(commands) >= len(BUILTIN_MODULES)
    result = _fresh_python(
        "import contextlib, io, json, sys\n"
        "from av_link.cli import main\n"
        "codes, texts = {}, {}\n"
        f"for command in {commands!r} + ['']:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        codes[command] = main(([command] if command else []) + ['--help'])\n"
        "    texts[command] = out.getvalue()\n"
        f"print(json.dumps(dict(codes=codes, texts=texts, heavy=[m for m in {HEAVY!r} if m in sys.modules])))\n"
    )
    assert result["heavy"] == []
    assert set(result["codes"].values()) == {0}
    assert all(result["texts"][c].startswith(f"usage: av-link {c}".rstrip()) for c in result["codes"])
    assert "--height PX" in result["texts"]["a2v"]


def test_import_av_link_is_lazy_and_every_public_name_resolves():
    result = _fresh_python(
        "import json, sys, av_link\n"
        f"before = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "pipe = av_link.AVLinkV2APipeline\n"
        f"print(json.dumps(dict(before=before, after=[m for m in {HEAVY!r} if m in sys.modules], name=pipe.__name__)))\n"
    )
    assert result["before"] == [] and result["after"] == list(HEAVY) and result["name"] == "AVLinkV2APipeline"
    for name in av_link.__all__:
        assert getattr(av_link, name) is not None
    assert set(av_link.__all__) <= set(dir(av_link))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        av_link.NoSuchThing


def test_a_saved_pipeline_loads_in_a_fresh_process_through_the_pipelines_package(tmp_path):
    # diffusers' loader only takes component modules that are already imported; `import av_link` no longer
    # imports them all, so the pipelines package must (the scheduler's module is the one nothing else imports)
    from av_link import AVLinkTextToAudioPipeline
    from av_link.testing import tiny_components

    c = tiny_components(fusion=False)
    parts = ("audio_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")
    AVLinkTextToAudioPipeline(**{k: c[k] for k in parts}).save_pretrained(tmp_path / "t2a")
    result = _fresh_python(
        "import json\n"
        "from av_link.pipelines import AVLinkTextToAudioPipeline\n"
        f"pipe = AVLinkTextToAudioPipeline.from_pretrained({str(tmp_path / 't2a')!r})\n"
        "print(json.dumps(dict(scheduler=type(pipe.scheduler).__name__)))\n"
    )
    assert result["scheduler"] == "FlowMatchEulerScheduler"


def test_metrics_do_not_import_the_data_generators():
    result = _fresh_python(
        "import json, sys\n"
        "import numpy as np\n"
        "from av_link.metrics import contact_band, visual_event_signal\n"
        "signal = visual_event_signal(np.zeros((3, 16, 16, 3), np.uint8))\n"
        "print(json.dumps(dict(band=list(contact_band(16)), frames=len(signal),\n"
        "                      data=[m for m in sys.modules if m.startswith('av_link.data')])))\n"
    )
    assert result["data"] == [] and result["frames"] == 3
    assert result["band"] == [10, 13]  # the surface starts at row 13 of 16; the band is the 3 rows above it


@pytest.mark.parametrize("diffusers_first", [False, True])
def test_generic_diffusion_pipeline_loads_an_av_link_folder_after_a_plain_import(diffusers_first):
    folder = os.path.join(os.path.dirname(av_link.__file__), "assets", "synthhits", "v2a")
    imports = ["from diffusers import DiffusionPipeline", "import av_link"]
    result = _fresh_python(
        "import json, sys\n"
        + "\n".join(imports if diffusers_first else imports[::-1]) + "\n"
        + f"pipe = DiffusionPipeline.from_pretrained({folder!r})\n"
        "print(json.dumps(dict(name=type(pipe).__name__)))\n"
    )
    assert result["name"] == "AVLinkV2APipeline"


# The first av-link import of a session may be a package whose own imports bring in diffusers before it has defined
# what the pipelines import from it (the scheduler, the LoRA mixin): it must import, and register them when done.
@pytest.mark.parametrize("module", ["av_link.schedulers", "av_link.schedulers.flow_time", "av_link.loaders", "av_link.models",
                                    "av_link.training.objectives", "av_link.evaluation"])
def test_any_av_link_module_imports_first_and_the_pipelines_get_registered(module):
    result = _fresh_python(
        f"import json, {module}, diffusers\n"
        "print(json.dumps(dict(name=diffusers.AVLinkV2APipeline.__name__, a2v=diffusers.AVLinkA2VPipeline.__name__)))\n"
    )
    assert result == {"name": "AVLinkV2APipeline", "a2v": "AVLinkA2VPipeline"}
