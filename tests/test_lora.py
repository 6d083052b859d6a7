"""LoRA on the three models (PEFT through diffusers' PeftAdapterMixin) and on the pipelines (AVLinkLoraLoaderMixin)."""

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
from peft import LoraConfig  # noqa: E402

from av_link import AVLinkTextToAudioPipeline, AVLinkV2APipeline  # noqa: E402
from av_link.loaders import lora_save_kwargs  # noqa: E402
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components  # noqa: E402

from conftest import randomize_  # noqa: E402
from model_cases import CLOSE, KINDS, assert_outputs, build_models, make_inputs, run  # noqa: E402


def lora_config(rank=4, alpha=8.0, targets=("to_q", "to_k", "to_v", "to_out")):
    # init_lora_weights=False: random A and B, so a fresh LoRA already changes the output
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)


@pytest.mark.parametrize("kind", KINDS)
def test_model_lora_round_trips_and_unloads(kind, tmp_path):
    x = make_inputs()
    models = build_models()
    with torch.no_grad():
        base = run(kind, models, x)
        models[kind].add_adapter(lora_config(), adapter_name="style")
        adapted = run(kind, models, x)
        assert all(not torch.allclose(a, b, **CLOSE) for a, b in zip(adapted, base))
        models[kind].save_lora_adapter(tmp_path, adapter_name="style")

        fresh = build_models()
        fresh[kind].load_lora_adapter(tmp_path, prefix=None, adapter_name="style", use_safetensors=True)
        assert (fresh[kind].peft_config["style"].r, fresh[kind].peft_config["style"].lora_alpha) == (4, 8.0)
        assert_outputs(run(kind, fresh, x), adapted, **CLOSE)
        fresh[kind].disable_lora()
        assert_outputs(run(kind, fresh, x), base, **CLOSE)
        fresh[kind].enable_lora()
        fresh[kind].unload_lora()
        assert not any("lora" in name for name in fresh[kind].state_dict())
        assert_outputs(run(kind, fresh, x), base, **CLOSE)


def tiny_v2a():
    components = tiny_components()
    for i, name in enumerate(("audio_transformer", "video_transformer", "fusion_adapter")):
        randomize_(components[name], std=0.05, seed=i)  # open the Fusion Blocks' gates so that their LoRA matters
    return AVLinkV2APipeline(**components, **TINY_PIPELINE_CONFIG)


def sample(pipe):
    video = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    return pipe(video=video, video_fps=8, num_inference_steps=2, output_type="latent",
                generator=torch.Generator().manual_seed(0)).audios


@pytest.fixture(scope="module")
def saved_lora(tmp_path_factory):
    """A V2A pipeline with LoRAs on its audio backbone and adapter, its output with and without them, and the file."""
    pipe = tiny_v2a()
    base = sample(pipe)
    pipe.audio_transformer.add_adapter(lora_config(rank=2, alpha=4.0))
    pipe.fusion_adapter.add_adapter(lora_config(targets=("to_q", "to_v", "audio_mlp.0")))
    adapted = sample(pipe)
    folder = tmp_path_factory.mktemp("lora")
    AVLinkV2APipeline.save_lora_weights(folder, **lora_save_kwargs(audio_transformer=pipe.audio_transformer,
                                                                   video_transformer=pipe.video_transformer,
                                                                   fusion_adapter=pipe.fusion_adapter))
    return folder, base, adapted


def test_pipeline_lora_round_trips(saved_lora):
    folder, base, adapted = saved_lora
    assert [p.name for p in folder.iterdir()] == ["pytorch_lora_weights.safetensors"]
    pipe = tiny_v2a()
    pipe.load_lora_weights(folder, adapter_name="foley")
    assert pipe.get_list_adapters() == {"audio_transformer": ["foley"], "fusion_adapter": ["foley"]}
    assert pipe.audio_transformer.peft_config["foley"].r == 2 and pipe.fusion_adapter.peft_config["foley"].r == 4
    torch.testing.assert_close(sample(pipe), adapted, **CLOSE)
    assert not torch.allclose(adapted, base, **CLOSE)
    pipe.unload_lora_weights()
    assert pipe.get_list_adapters() == {}
    torch.testing.assert_close(sample(pipe), base, **CLOSE)


def test_pipeline_lora_scale_and_fusing(saved_lora):
    folder, base, adapted = saved_lora
    pipe = tiny_v2a()
    pipe.load_lora_weights(folder)  # default name
    assert pipe.get_list_adapters()["fusion_adapter"] == ["default_0"]
    pipe.set_adapters("default_0", 0.0)
    torch.testing.assert_close(sample(pipe), base, **CLOSE)
    pipe.set_adapters("default_0", 1.0)
    pipe.fuse_lora(components=["audio_transformer", "fusion_adapter"])
    assert pipe.num_fused_loras == 1
    torch.testing.assert_close(sample(pipe), adapted, rtol=1e-4, atol=1e-4)
    pipe.unfuse_lora(components=["audio_transformer", "fusion_adapter"])
    pipe.unload_lora_weights()
    torch.testing.assert_close(sample(pipe), base, rtol=1e-4, atol=1e-4)


def test_lora_errors_are_named(saved_lora):
    folder, _, _ = saved_lora
    t2a = AVLinkTextToAudioPipeline(**{k: v for k, v in tiny_components(fusion=False).items() if k != "video_transformer"},
                                    clip_seconds=2.0, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"\['fusion_adapter'\], which AVLinkTextToAudioPipeline does not have"):
        t2a.load_lora_weights(folder)
    with pytest.raises(ValueError, match="every parameter name must contain 'lora'"):
        t2a.load_lora_weights({"audio_transformer.blocks.0.attn.to_q.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="an av-link LoRA prefixes each key"):
        t2a.load_lora_weights({"transformer.blocks.0.attn.to_q.lora_A.weight": torch.zeros(1, 1)})
    with pytest.raises(ValueError, match="has a LoRA adapter named 'default'"):
        lora_save_kwargs(audio_transformer=t2a.audio_transformer)
    with pytest.raises(ValueError, match="at least one of"):
        AVLinkV2APipeline.save_lora_weights(folder)
