"""Our HiFi-GAN decoder against ESPnet's ``HiFiGANGenerator``: keys, weights, outputs, speed path.

The decoder is built as ``espnet2.gan_tts.vits.generator.VITSGenerator`` builds it, for
the tiny test configuration and for ESPnet's LJSpeech VITS defaults.
"""

import copy
import inspect
import pickle

import pytest
import torch
from helpers.tiny_configs import TINY_GENERATOR_PARAMS
from espnet2.gan_tts.hifigan import HiFiGANGenerator as EspnetDecoder
from espnet2.gan_tts.vits.vits import VITS as EspnetVITS

from espnet2_vits_ext.vits.decoder import HiFiGANGenerator
from espnet2_vits_ext.layers.hifigan_residual_block import ResidualBlock


def decoder_kwargs(gen: dict) -> dict:
    """The decoder arguments ``VITSGenerator`` derives from its ``generator_params``."""
    return dict(
        in_channels=gen["hidden_channels"],
        out_channels=1,
        channels=gen["decoder_channels"],
        global_channels=gen["global_channels"],
        kernel_size=gen["decoder_kernel_size"],
        upsample_scales=gen["decoder_upsample_scales"],
        upsample_kernel_sizes=gen["decoder_upsample_kernel_sizes"],
        resblock_kernel_sizes=gen["decoder_resblock_kernel_sizes"],
        resblock_dilations=gen["decoder_resblock_dilations"],
        use_weight_norm=gen["use_weight_norm_in_decoder"],
    )


LJSPEECH = decoder_kwargs(inspect.signature(EspnetVITS.__init__).parameters["generator_params"].default)
TINY = decoder_kwargs(TINY_GENERATOR_PARAMS)
CONFIGS = {
    "tiny": TINY,
    "tiny_global": dict(TINY, global_channels=8),
    "ljspeech": LJSPEECH,
    "variant": dict(  # every other switch: ELU, no norm, no extra convs, no bias, odd scale
        TINY,
        upsample_scales=[3, 2],
        upsample_kernel_sizes=[6, 4],
        nonlinear_activation="ELU",
        nonlinear_activation_params={"alpha": 1.0},
        use_weight_norm=False,
        use_additional_convs=False,
        bias=False,
    ),
    "relu_single_block": dict(
        TINY, resblock_kernel_sizes=[5], resblock_dilations=[[1, 3, 5]], nonlinear_activation="ReLU",
        nonlinear_activation_params={},
    ),
}


def build_pair(kwargs, seed=0):
    torch.manual_seed(seed)
    ref = EspnetDecoder(**copy.deepcopy(kwargs))
    torch.manual_seed(seed)
    ours = HiFiGANGenerator(**copy.deepcopy(kwargs))
    return ref, ours


def inputs(kwargs, frames=6, batch=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(batch, kwargs["in_channels"], frames, generator=gen)
    g = None
    if kwargs.get("global_channels", -1) > 0:
        g = torch.randn(batch, kwargs["global_channels"], 1, generator=gen)
    return c, g


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_keys_shapes_and_seeded_init(name):
    ref, ours = build_pair(CONFIGS[name])
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    for k in ref_sd:
        assert our_sd[k].shape == ref_sd[k].shape, k
        # same creation order and random draws: a seeded build is ESPnet's, weight for weight
        assert torch.equal(our_sd[k], ref_sd[k]), k
    assert ours.upsample_factor == ref.upsample_factor


@pytest.mark.parametrize("name", list(CONFIGS))
def test_strict_load_both_ways_and_equal_outputs(name):
    kwargs = CONFIGS[name]
    full_size = name.startswith("ljspeech")
    ref, _ = build_pair(kwargs, seed=0)
    _, ours = build_pair(kwargs, seed=1)  # different weights until loaded
    ours.load_state_dict(ref.state_dict(), strict=True)
    c, g = inputs(kwargs, frames=4 if full_size else 6, batch=1 if full_size else 2)
    y_ref = ref(c, g)
    y = ours(c, g)
    assert y.shape == (c.size(0), 1, c.size(2) * ref.upsample_factor)
    assert_close(y, y_ref)

    if not full_size:  # gradients (training path) match too; same code at full size
        (y_ref * torch.linspace(-1, 1, y.size(-1))).sum().backward()
        (y * torch.linspace(-1, 1, y.size(-1))).sum().backward()
        ref_params = dict(ref.named_parameters())
        for n, p in ours.named_parameters():
            scale = ref_params[n].grad.abs().max().clamp_min(1e-12)
            assert ((p.grad - ref_params[n].grad).abs().max() / scale) < 1e-3, n

    # and back: ESPnet loads ours (after we change them)
    with torch.no_grad():
        for p in ours.parameters():
            p.mul_(1.1).add_(0.01)
    ref.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        assert_close(ours(c, g), ref(c, g))


@pytest.mark.parametrize("name", ["tiny", "tiny_global", "ljspeech", "variant"])
def test_folded_inference_path(name):
    kwargs = CONFIGS[name]
    ref, ours = build_pair(kwargs)
    c, g = inputs(kwargs, frames=4, batch=1) if name == "ljspeech" else inputs(kwargs)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    y_grad = ours(c, g)
    with torch.no_grad():
        y_ref = ref(c, g)
        y_fold = ours(c, g)  # builds the folded cache
        y_fold2 = ours(c, g)  # reuses it
    with torch.inference_mode():
        y_inf = ours(c, g)
    assert ours._folded is not None
    assert_close(y_fold, y_grad.detach())
    assert_close(y_fold, y_ref)
    assert torch.equal(y_fold, y_fold2) and torch.equal(y_fold, y_inf)

    # the state_dict is untouched by folding: same keys, same values, nothing added
    after = ours.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert ours.fold_weight_norm() is ours and list(ours.state_dict()) == list(before)

    # new weights (load_state_dict copies in place) invalidate the folded copy
    with torch.no_grad():
        new_weights = {k: v * 0.9 + 0.001 for k, v in ref.state_dict().items()}
    ours.load_state_dict(new_weights)
    ref.load_state_dict(new_weights)
    with torch.no_grad():
        assert_close(ours(c, g), ref(c, g))
        # ... and so does an in-place update (e.g. an optimiser step or EMA)
        for p in list(ours.parameters())[:3]:
            p.mul_(1.5)
        for p in list(ref.parameters())[:3]:
            p.mul_(1.5)
        assert_close(ours(c, g), ref(c, g))


@pytest.mark.parametrize("name", ["tiny", "tiny_global", "piper_type2_odd_scale"])
@pytest.mark.parametrize("chunk_bytes", [1, 800])
@pytest.mark.parametrize("width_steps", [1, 3, 16])
def test_packed_path_in_time_chunks_equals_whole_signal(name, chunk_bytes, width_steps, monkeypatch):
    """The packed CPU path runs each stage in time chunks with a halo, the chunk at the end
    zero-padded to a grid width (one grid step a whole chunk window, for ``width_steps`` 1:
    padded in every stage); tiny chunks (one input sample each, or a few) must give ESPnet's
    waveform, edges included."""
    from espnet2_vits_ext.acceleration import packed_decoder

    monkeypatch.setattr(packed_decoder, "WIDTH_STEPS", width_steps)

    kwargs = dict(  # HiFi-GAN block type "2" (one conv per step), odd scale: output_padding
        TINY, upsample_scales=[3, 4], upsample_kernel_sizes=[6, 8], resblock_kernel_sizes=[3, 5],
        resblock_dilations=[[1, 2], [2, 6]], use_additional_convs=False,
    ) if name == "piper_type2_odd_scale" else CONFIGS[name]
    ref, ours = build_pair(kwargs)
    c, g = inputs(kwargs, frames=23)
    with torch.inference_mode():
        expected = ref(c, g)
        assert packed_decoder.applies(ours, c)
        whole = ours(c, g)  # one chunk per stage at the default chunk size
        monkeypatch.setattr(packed_decoder, "CHUNK_BYTES", chunk_bytes)
        chunked = ours(c, g)
    assert chunked.shape == expected.shape
    assert_close(chunked, expected)
    assert_close(chunked, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("first_frames", [5, 60])
def test_packed_plan_does_not_depend_on_the_first_length(first_frames, monkeypatch):
    """The plan is packed once, for the chunk windows, not per sentence length (repacking the
    decoder's weights for every new length would cost more than the chunks it serves): one
    plan serves lengths shorter and longer than the first, each ESPnet's waveform."""
    from espnet2_vits_ext.acceleration import packed_decoder

    monkeypatch.setattr(packed_decoder, "CHUNK_BYTES", 800)  # several chunks per stage
    kwargs = CONFIGS["tiny"]
    ref, ours = build_pair(kwargs)
    with torch.inference_mode():
        c, g = inputs(kwargs, batch=1, frames=first_frames)
        assert_close(ours(c, g), ref(c, g))
        plan = ours._packed_plans[torch.float32]
        for frames in (7, 41, first_frames):
            c, g = inputs(kwargs, batch=1, frames=frames)
            assert_close(ours(c, g), ref(c, g))
            assert ours._packed_plans[torch.float32] is plan


def test_packed_convs_see_few_widths_over_many_lengths(monkeypatch):
    """oneDNN builds a kernel per input width, so the packed path pads the latent and each
    stage's last chunk to grid widths: over 60 sentence lengths the convs see a few widths
    per stage, not one per length, and every length is still ESPnet's waveform."""
    from espnet2_vits_ext.acceleration import packed_decoder

    monkeypatch.setattr(packed_decoder, "CHUNK_BYTES", 4000)  # a chunk window of ~100 latent frames
    widths = {}  # (function, input channels) -> the input widths it ran at
    for name in ("conv", "conv_add", "conv_transpose"):
        original = getattr(packed_decoder, name)

        def spy(x, *args, _original=original, _name=name, **kwargs):
            widths.setdefault((_name, x.size(1)), set()).add(x.size(3))
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(packed_decoder, name, spy)
    kwargs = dict(CONFIGS["tiny"], in_channels=12)  # no stage has 12 channels: the input conv's
    ref, ours = build_pair(kwargs)
    lengths = range(40, 160, 2)
    with torch.inference_mode():
        for frames in lengths:
            c, g = inputs(kwargs, batch=1, frames=frames, seed=frames)
            assert_close(ours(c, g), ref(c, g))
    counts = {key: len(seen) for key, seen in widths.items()}
    # unpadded, the input conv and every stage's end chunk would see one width per length
    assert max(counts.values()) <= len(lengths) // 3, counts
    assert len(counts) >= 4


def test_inference_method_and_copies():
    kwargs = CONFIGS["tiny_global"]
    ref, ours = build_pair(kwargs)
    c, g = inputs(kwargs, batch=1)
    with torch.no_grad():
        expected = ref.inference(c[0].T, g=g[0])
        assert_close(ours.inference(c[0].T, g=g[0]), expected)
        # copies neither carry nor trust the folded cache of the original
        clone = copy.deepcopy(ours)
        assert clone._folded is None
        assert_close(clone.inference(c[0].T, g=g[0]), expected)
        restored = pickle.loads(pickle.dumps(ours))
        assert_close(restored.inference(c[0].T, g=g[0]), expected)


def test_remove_weight_norm_matches_espnet():
    ref, ours = build_pair(TINY)
    ref.remove_weight_norm()
    ours.remove_weight_norm()
    assert list(ours.state_dict()) == list(ref.state_dict())
    c, g = inputs(TINY)
    with torch.no_grad():
        assert_close(ours(c, g), ref(c, g))
    ours.apply_weight_norm()
    assert any(k.endswith("weight_g") for k in ours.state_dict())


def test_autocast_bf16_runs_and_stays_close():
    ref, ours = build_pair(TINY)
    c, g = inputs(TINY)
    with torch.no_grad():
        y32 = ref(c, g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = ours(c, g)
            key_dtype = ours._folded[0][0]
    assert key_dtype == torch.bfloat16  # the folded weights were cast once, for bf16
    assert torch.isfinite(y16).all()
    assert (y16.float() - y32).abs().max() < 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training path under autocast
        y = ours(c, g)
        y.float().pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


def test_residual_block_standalone():
    torch.manual_seed(0)
    from espnet2.gan_tts.hifigan.residual_block import ResidualBlock as EspnetBlock

    kwargs = dict(kernel_size=5, channels=8, dilations=[1, 2, 4])
    torch.manual_seed(0)
    ref = EspnetBlock(**kwargs)
    torch.manual_seed(0)
    ours = ResidualBlock(**kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 30)
    assert_close(ours(x), ref(x))
    with torch.no_grad():
        weights = iter([(m.weight, m.bias) for m in ours.conv_modules()])
        assert_close(ours.run(x, None, weights), ref(x))


def test_global_input_without_global_conv_is_an_error():
    _, ours = build_pair(TINY)
    c, _ = inputs(TINY)
    with pytest.raises(ValueError):
        ours(c, torch.randn(2, 4, 1))
