"""What diffusers' model tests check, for av-link's three models: the two backbones (through `forward`) and the
Fusion adapter (through `joint_forward`, between randomly initialised backbones).

Every check runs a model on fixed random inputs and compares outputs against a reference computed another way.
"""

import copy

import pytest
import torch
from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry
from safetensors.torch import load_file

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer
from av_link.models.attention import AVLinkAttention, AVLinkAttnProcessor
from av_link.models.joint import joint_forward

from conftest import randomize_
from model_cases import CLOSE, KINDS, assert_outputs, build_models, make_inputs, reference, run


@pytest.fixture
def models():
    return build_models()


@pytest.fixture
def x():
    return make_inputs()


# -- the attention refactor -------------------------------------------------------------------------


def legacy_attention(attn, x, context=None, rope=None, key_mask=None, context_rope=None, bias=None):
    """av-link's attention before the processor refactor (heads-first layout, SDPA called directly)."""
    from diffusers.models.embeddings import apply_rotary_emb

    heads = lambda t: t.unflatten(-1, (attn.heads, attn.head_dim)).transpose(1, 2)
    context = x if context is None else context
    q, k, v = attn.norm_q(heads(attn.to_q(x))), attn.norm_k(heads(attn.to_k(context))), heads(attn.to_v(context))
    if rope is not None:
        q = apply_rotary_emb(q, rope, use_real=True, use_real_unbind_dim=-1)
    if context_rope is not None or rope is not None:
        k = apply_rotary_emb(k, context_rope or rope, use_real=True, use_real_unbind_dim=-1)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if bias is not None:
        mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.to_out(out.transpose(1, 2).flatten(2))


def test_attention_matches_the_pre_refactor_implementation():
    from av_link.models.rope import rope_1d

    attn = randomize_(AVLinkAttention(32, 4), std=0.3)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 6, 32, generator=g), torch.randn(2, 9, 32, generator=g)
    rope, ctx_rope = rope_1d(torch.arange(6.0) * 0.7, 8), rope_1d(torch.arange(9.0) * 0.7, 8)
    key_mask = torch.tensor([[1] * 7 + [0] * 2, [1] * 9], dtype=torch.bool)
    bias = -torch.rand(4, 6, 9, generator=g) * 3
    cases = [  # (new keyword arguments, legacy keyword arguments)
        (dict(rotary_emb=rope), dict(rope=rope)),
        (dict(encoder_hidden_states=ctx, attention_mask=key_mask), dict(context=ctx, key_mask=key_mask)),
        (dict(encoder_hidden_states=ctx, rotary_emb=rope, key_rotary_emb=ctx_rope, attention_bias=bias),
         dict(context=ctx, rope=rope, context_rope=ctx_rope, bias=bias)),
        (dict(encoder_hidden_states=ctx, attention_mask=key_mask, attention_bias=bias), dict(context=ctx, key_mask=key_mask, bias=bias)),
    ]
    with torch.no_grad():
        for new, old in cases:
            # rtol: a 4D bias takes the CPU flash kernel, which sums in another order (float32 rounding)
            torch.testing.assert_close(attn(x, **new), legacy_attention(attn, x, **old), rtol=1e-6, atol=1e-6)


def test_parameter_names_are_unchanged_and_shipped_checkpoints_load_strictly():
    """State-dict keys are an on-disk format: the SynthHits models, saved before the refactor, still match exactly."""
    from importlib.resources import files

    root = files("av_link") / "assets" / "synthhits" / "v2a"
    for name, cls in (("audio_transformer", AVLinkAudioTransformer), ("video_transformer", AVLinkVideoTransformer),
                      ("fusion_adapter", AVLinkFusionAdapter)):
        saved = load_file(str(root / name / "diffusion_pytorch_model.safetensors"))
        model = cls.from_config(cls.load_config(str(root / name)))
        assert set(model.state_dict()) == set(saved)
        model.load_state_dict(saved, strict=True)
    assert "blocks.0.attn.to_out.weight" in saved and "blocks.0.attn.norm_q.weight" in saved


# -- processors and backends ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_attention_processors_are_listed_and_settable(kind, models, x):
    model = models[kind]
    processors = model.attn_processors
    per_block = 1 if kind == "adapter" else 2  # a Fusion Block has one self-attention; a DiT block self + cross
    assert len(processors) == per_block * len(model.blocks)
    assert all(isinstance(p, AVLinkAttnProcessor) for p in processors.values())
    assert "blocks.0.attn.processor" in processors

    calls = []

    class Recording(AVLinkAttnProcessor):
        def __call__(self, attn, *args, **kwargs):
            calls.append(attn)
            return super().__call__(attn, *args, **kwargs)

    expected = reference(kind, x)
    model.set_attn_processor({name: Recording() for name in processors})
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)
    assert len(calls) > 0 and all(isinstance(m, AVLinkAttention) for m in calls)
    with pytest.raises(ValueError, match="number of processors"):
        model.set_attn_processor({"blocks.0.attn.processor": AVLinkAttnProcessor()})


@pytest.mark.parametrize("kind", KINDS)
def test_attention_backend_is_used(kind, models, x, monkeypatch):
    # diffusers' set_attention_backend also sets the process-wide default: restore it after the test
    monkeypatch.setattr(_AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend)
    expected = reference(kind, x)
    models[kind].set_attention_backend("native")
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)

    calls = []
    math = _AttentionBackendRegistry._backends[AttentionBackendName._NATIVE_MATH]

    def counting(*args, **kwargs):
        calls.append(kwargs["query"].shape)
        return math(*args, **kwargs)

    monkeypatch.setitem(_AttentionBackendRegistry._backends, AttentionBackendName._NATIVE_MATH, counting)
    models[kind].set_attention_backend("_native_math")
    _AttentionBackendRegistry.set_active_backend(AttentionBackendName.NATIVE)  # only this model's processors use math
    assert {p._attention_backend for p in models[kind].attn_processors.values()} == {AttentionBackendName._NATIVE_MATH}
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)
    assert len(calls) == len(models[kind].attn_processors)  # every attention module ran on the chosen backend
    with pytest.raises(ValueError, match="must be one of"):
        models[kind].set_attention_backend("no-such-backend")


@pytest.mark.parametrize("kind", KINDS)
def test_fused_qkv_projections_give_the_same_outputs(kind, models, x):
    model = models[kind]
    keys = set(model.state_dict())
    expected = reference(kind, x)
    model.fuse_qkv_projections()
    assert all(hasattr(m, "to_kv" if m.is_cross_attention else "to_qkv") for m in model.modules() if isinstance(m, AVLinkAttention))
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)
    model.unfuse_qkv_projections()
    assert set(model.state_dict()) == keys


# -- dtypes, casting, offloading ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_weights_compute_in_bfloat16(kind, models, x):
    expected = reference(kind, x)
    for model in models.values():  # fp32 inputs: the models cast them to their own dtype
        model.to(torch.bfloat16)
    assert models[kind].dtype == torch.bfloat16
    with torch.no_grad():
        out = run(kind, models, x)
    assert all(o.dtype == torch.bfloat16 for o in out)
    scale = max(e.abs().max() for e in expected)
    assert_outputs([o.float() for o in out], expected, rtol=0, atol=0.05 * scale)


@pytest.mark.parametrize("storage", [torch.float16, torch.float8_e4m3fn])
@pytest.mark.parametrize("kind", KINDS)
def test_layerwise_casting_equals_rounded_weights(kind, storage, models, x):
    """Storage in fp16/fp8 with fp32 compute is exactly the fp32 model with the cast layers' weights rounded."""
    rounded = build_models()
    models[kind].enable_layerwise_casting(storage_dtype=storage, compute_dtype=torch.float32)
    cast = {n for n, m in models[kind].named_modules() if isinstance(m, torch.nn.Linear) and m.weight.dtype == storage}
    # the attention and MLP weights are stored low; embeddings, norms and modulation are left alone
    if kind == "adapter":
        low, kept = ["blocks.0.attn.to_q", "blocks.0.audio_mlp.0", "blocks.1.video_in"], ["audio_time_mlp.0", "video_time_mlp.2"]
    else:
        low = ["blocks.0.attn.to_q", "blocks.0.cross_attn.to_out", "blocks.3.mlp.2"]
        kept = ["time_embedder.linear_1", "text_proj.0", "proj_in", "proj_out", "blocks.0.adaLN_modulation.1", "out_modulation.1"]
    assert set(low) <= cast and not cast & set(kept)
    assert models[kind].dtype == torch.float32
    with torch.no_grad():
        for name, module in rounded[kind].named_modules():
            if name in cast:
                module.weight.copy_(module.weight.to(storage).float())
                module.bias.copy_(module.bias.to(storage).float())
        expected = run(kind, rounded, x)
        out = run(kind, models, x)
    assert all(o.dtype == torch.float32 for o in out)
    assert_outputs(out, expected, **CLOSE)


@pytest.mark.parametrize("offload_type", ["block_level", "leaf_level"])
@pytest.mark.parametrize("kind", KINDS)
def test_group_offloading_to_disk_gives_the_same_outputs(kind, offload_type, models, x, tmp_path):
    """Offloading to disk frees the weights between uses, so a layer that is used without being onloaded shows
    up on a CPU too (block-level offloading onloads top-level layers in `forward`; the joint forward skips it)."""
    expected = reference(kind, x)
    for name, model in models.items():
        model.enable_group_offload(torch.device("cpu"), offload_device=torch.device("cpu"), offload_type=offload_type,
                                   num_blocks_per_group=1, offload_to_disk_path=str(tmp_path / name))
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)
        assert_outputs(run(kind, models, x), expected, **CLOSE)  # and again, after offloading


# -- determinism, batching, save/load ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_batch_consistent(kind, models, x):
    with torch.no_grad():
        first, second = run(kind, models, x), run(kind, models, x)
        assert_outputs(first, second, rtol=0, atol=0)
        for i in range(2):
            single = {k: (v[i : i + 1] if torch.is_tensor(v) and v.ndim else v) for k, v in x.items()}
            # the padded text of sample 0 alone, without padding, gives the same result as in the batch
            length = int(x["mask"][i].sum())
            single["text"], single["mask"] = single["text"][:, :length], single["mask"][:, :length]
            assert_outputs(run(kind, models, single), [o[i : i + 1] for o in first], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_fp16_variant_round_trip(kind, models, x, tmp_path):
    model = models[kind]
    copy.deepcopy(model).to(torch.float16).save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "diffusion_pytorch_model.fp16.safetensors").is_file()
    loaded = type(model).from_pretrained(tmp_path, variant="fp16", torch_dtype=torch.float32)
    assert loaded.dtype == torch.float32
    for (name, a), b in zip(loaded.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b.half().float()), name
    with pytest.raises(EnvironmentError):
        type(model).from_pretrained(tmp_path)  # no default-precision file in this folder


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(kind, models, x):
    model = models[kind].train()

    def outputs_and_grads():
        model.zero_grad()
        out = run(kind, models, x)
        sum(o.square().mean() for o in out).backward()
        return [o.detach() for o in out], {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_out, plain_grads = outputs_and_grads()
    model.enable_gradient_checkpointing()
    out, grads = outputs_and_grads()
    assert_outputs(out, plain_out, rtol=0, atol=0)
    assert grads.keys() == plain_grads.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=1e-5, atol=1e-7, msg=name)


# -- torch.compile -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_compiles_to_one_graph(kind, models, x):
    """fullgraph=True raises on any graph break; "eager" keeps the compile itself fast on a CPU."""
    torch._dynamo.reset()
    expected = reference(kind, x)
    compiled = dict(models)
    fn = joint_forward
    if kind == "adapter":
        fn = torch.compile(joint_forward, fullgraph=True, backend="eager")
    else:
        compiled[kind] = torch.compile(models[kind], fullgraph=True, backend="eager")
    with torch.no_grad():
        assert_outputs(run(kind, compiled, x, fn), expected, **CLOSE)
    with pytest.raises(ValueError, match="masks every text token"):  # the check still runs outside compile
        models["audio"](x["audio"], 0.5, x["text"], torch.zeros_like(x["mask"]))


@pytest.mark.parametrize("kind", ["audio", "adapter"])
def test_regional_compile_of_the_repeated_blocks(kind, models, x):
    torch._dynamo.reset()
    expected = reference(kind, x)
    models[kind].compile_repeated_blocks(fullgraph=True, backend="eager")  # `_repeated_blocks`: DiT / Fusion Blocks
    with torch.no_grad():
        assert_outputs(run(kind, models, x), expected, **CLOSE)
