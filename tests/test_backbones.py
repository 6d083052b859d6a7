import pytest
import torch

from av_link import AVLinkAudioTransformer, AVLinkVideoTransformer

from conftest import randomize_


def _text(batch=2, length=5, dim=32, seed=1):
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [1, 7, 38])
def test_audio_shapes_any_length(frames):
    model = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=4)
    x = torch.randn(2, frames, 8)
    out = model(x, torch.tensor([0.1, 0.9]), _text()).sample
    assert out.shape == x.shape


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 9, 13), (6, 18, 32)])
def test_video_shapes_any_size(shape):
    model = AVLinkVideoTransformer.from_preset("tiny", patch_size=(2, 2, 2))
    x = torch.randn(2, 3, *shape)
    out = model(x, 0.5, _text()).sample
    assert out.shape == x.shape


def test_time_positions_in_seconds():
    audio = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=2, frame_rate=20.0)
    video = AVLinkVideoTransformer.from_preset("tiny", patch_size=(1, 2, 2), frame_rate=6.0)
    a = audio.embed(torch.randn(1, 10, 8), 0.5, _text(1))
    v = video.embed(torch.randn(1, 3, 3, 4, 4), 0.5, _text(1))
    torch.testing.assert_close(a.time_positions, torch.arange(5, dtype=torch.float64) * 0.1)
    # 2x2 tokens per frame, each carrying its frame's time.
    torch.testing.assert_close(v.time_positions, torch.arange(3, dtype=torch.float64).repeat_interleave(4) / 6)


def test_text_mask_matters_and_padding_is_ignored():
    model = randomize_(AVLinkAudioTransformer.from_preset("tiny", in_channels=8), std=0.05)
    x, text = torch.randn(1, 5, 8), _text(1, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    masked = model(x, 0.5, text, mask).sample
    changed_padding = text.clone()
    changed_padding[:, 3:] = 100.0
    torch.testing.assert_close(model(x, 0.5, changed_padding, mask).sample, masked)
    assert not torch.allclose(model(x, 0.5, text).sample, masked)


def test_bad_inputs_are_named():
    audio = AVLinkAudioTransformer.from_preset("tiny", in_channels=8)
    video = AVLinkVideoTransformer.from_preset("tiny")
    with pytest.raises(ValueError, match=r"audio input must be \(batch, frames>0, 8\)"):
        audio(torch.randn(2, 5, 7), 0.5, _text())
    with pytest.raises(ValueError, match="floating-point"):
        audio(torch.ones(2, 5, 8, dtype=torch.long), 0.5, _text())
    with pytest.raises(ValueError, match="video input must be"):
        video(torch.randn(2, 3, 4, 4), 0.5, _text())
    with pytest.raises(ValueError, match="encoder_hidden_states must be"):
        audio(torch.randn(3, 5, 8), 0.5, _text())
    with pytest.raises(ValueError, match="timestep must be a scalar or have shape"):
        audio(torch.randn(2, 5, 8), torch.rand(3), _text())
    with pytest.raises(ValueError, match="text_dim"):
        audio(torch.randn(2, 5, 8), 0.5, _text(dim=16))
    with pytest.raises(ValueError, match="masks every text token"):
        audio(torch.randn(2, 5, 8), 0.5, _text(), torch.zeros(2, 5))


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="hidden_size 100 is not divisible by num_attention_heads 16"):
        AVLinkAudioTransformer(hidden_size=100, num_layers=1)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        AVLinkVideoTransformer.from_preset("tiny", num_layers=0)
    with pytest.raises(ValueError, match="patch_size must be three positive ints"):
        AVLinkVideoTransformer.from_preset("tiny", patch_size=(2, 2))
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        AVLinkAudioTransformer.from_preset("huge")


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = randomize_(AVLinkVideoTransformer.from_preset("tiny"), std=0.05)
    x, text = torch.randn(2, 3, 2, 6, 6), _text()

    def grads():
        model.zero_grad()
        model(x, 0.4, text).sample.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [AVLinkAudioTransformer, AVLinkVideoTransformer])
def test_paper_scale_defaults_have_576M_parameters(cls):
    with torch.device("meta"):
        model = cls()
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 576e6) / 576e6 < 0.02, count
    assert (model.config.num_layers, model.config.hidden_size, model.config.num_attention_heads, model.config.mlp_dim) == (24, 1024, 16, 4096)


@pytest.mark.parametrize("cls", [AVLinkAudioTransformer, AVLinkVideoTransformer])
def test_save_load_round_trip(tmp_path, cls):
    model = randomize_(cls.from_preset("tiny"), std=0.05)
    x = torch.randn(1, 9, 80) if cls is AVLinkAudioTransformer else torch.randn(1, 3, 2, 4, 6)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith('_')}
    assert public(loaded.config) == public(model.config)
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    # Same weights; safetensors' memory-mapped tensors may pick another SIMD path (1 ulp).
    torch.testing.assert_close(loaded(x, 0.7, _text(1)).sample, model(x, 0.7, _text(1)).sample, rtol=0, atol=1e-6)
