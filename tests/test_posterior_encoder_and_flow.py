"""Our WaveNet, posterior encoder and residual coupling flow against ESPnet's."""

import numpy as np
import pytest
import torch

from helpers.tiny_configs import TINY_AUX_CHANNELS, TINY_GENERATOR_PARAMS
from helpers.espnet_parity import (
    as_tuple,
    assert_close_all,
    assert_same_grads,
    assert_same_layout_and_load_both_ways,
    signature_defaults,
    weighted_sum,
)

from espnet2_vits_ext.vits.posterior_encoder import PosteriorEncoder
from espnet2_vits_ext.layers.flip_flow import FlipFlow
from espnet2_vits_ext.vits.flow import ResidualAffineCouplingBlock, ResidualAffineCouplingLayer
from espnet2_vits_ext.layers.wavenet import WaveNet

espnet_posterior = pytest.importorskip("espnet2.gan_tts.vits.posterior_encoder")
espnet_coupling = pytest.importorskip("espnet2.gan_tts.vits.residual_coupling")
espnet_wavenet = pytest.importorskip("espnet2.gan_tts.wavenet")
espnet_vits = pytest.importorskip("espnet2.gan_tts.vits.vits")

# ESPnet's VITS defaults: egs2/ljspeech/tts1 conf/tuning/train_vits.yaml (n_fft 1024: 513 bins).
LJSPEECH_GENERATOR_PARAMS = dict(signature_defaults(espnet_vits.VITS)["generator_params"], aux_channels=513)
GENERATOR_PARAMS = {"tiny": TINY_GENERATOR_PARAMS, "ljspeech": LJSPEECH_GENERATOR_PARAMS}
GLOBAL_CHANNELS = [-1, 6]  # single speaker; speaker-conditioned (g of 6 channels)


def posterior_kwargs(p: dict, global_channels: int) -> dict:
    """PosteriorEncoder arguments as ESPnet's generator builds them."""
    return dict(
        in_channels=p["aux_channels"],
        out_channels=p["hidden_channels"],
        hidden_channels=p["hidden_channels"],
        kernel_size=p["posterior_encoder_kernel_size"],
        layers=p["posterior_encoder_layers"],
        stacks=p["posterior_encoder_stacks"],
        base_dilation=p["posterior_encoder_base_dilation"],
        global_channels=global_channels,
        dropout_rate=p["posterior_encoder_dropout_rate"],
        use_weight_norm=p["use_weight_norm_in_posterior_encoder"],
    )


def flow_kwargs(p: dict, global_channels: int) -> dict:
    """ResidualAffineCouplingBlock arguments as ESPnet's generator builds them."""
    return dict(
        in_channels=p["hidden_channels"],
        hidden_channels=p["hidden_channels"],
        flows=p["flow_flows"],
        kernel_size=p["flow_kernel_size"],
        base_dilation=p["flow_base_dilation"],
        layers=p["flow_layers"],
        global_channels=global_channels,
        dropout_rate=p["flow_dropout_rate"],
        use_weight_norm=p["use_weight_norm_in_flow"],
        use_only_mean=p["use_only_mean_in_flow"],
    )


def padded(channels: int, lengths, seed: int = 0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), channels, int(lengths.max()), generator=generator, dtype=dtype)
    mask = (torch.arange(x.size(2)) < lengths[:, None]).unsqueeze(1).to(dtype)
    return x, lengths, mask


def speaker(global_channels: int, batch: int, dtype=torch.float32):
    if global_channels <= 0:
        return None
    return torch.randn(batch, global_channels, 1, generator=torch.Generator().manual_seed(7), dtype=dtype)


def run_posterior(module, feats, lengths, g, seed=1234):
    torch.manual_seed(seed)  # the same noise for z in both modules
    return module(feats, lengths, g=g)


@pytest.mark.parametrize("config", sorted(GENERATOR_PARAMS))
@pytest.mark.parametrize("global_channels", GLOBAL_CHANNELS)
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_posterior_encoder_matches_espnet(config, global_channels, dtype, atol):
    kwargs = posterior_kwargs(GENERATOR_PARAMS[config], global_channels)
    espnet = espnet_posterior.PosteriorEncoder(**kwargs)
    ours = PosteriorEncoder(**kwargs)
    assert_same_layout_and_load_both_ways(espnet, ours)
    espnet.to(dtype).eval()
    ours.to(dtype).eval()
    feats, lengths, mask = padded(kwargs["in_channels"], [41, 29, 2], dtype=dtype)
    g = speaker(global_channels, 3, dtype)
    with torch.no_grad():
        expected = run_posterior(espnet, feats, lengths, g)
        actual = run_posterior(ours, feats, lengths, g)
    assert_close_all(expected, actual, atol=atol, rtol=1e-5)
    z, m, logs, y_mask = actual
    assert z.shape == m.shape == logs.shape == (3, kwargs["out_channels"], 41)
    torch.testing.assert_close(y_mask, mask, atol=0, rtol=0)
    assert torch.all(z[1, :, 29:] == 0)


@pytest.mark.parametrize("global_channels", GLOBAL_CHANNELS)
def test_posterior_encoder_gradients_match_espnet(global_channels):
    kwargs = posterior_kwargs(TINY_GENERATOR_PARAMS, global_channels)
    espnet = espnet_posterior.PosteriorEncoder(**kwargs)
    ours = PosteriorEncoder(**kwargs)
    assert_same_layout_and_load_both_ways(espnet, ours)
    espnet.double().train()
    ours.double().train()
    feats, lengths, _ = padded(TINY_AUX_CHANNELS, [17, 9], dtype=torch.float64)
    g = speaker(global_channels, 2, torch.float64)
    weighted_sum(run_posterior(espnet, feats, lengths, g)[:3]).backward()
    weighted_sum(run_posterior(ours, feats, lengths, g)[:3]).backward()
    assert_same_grads(espnet, ours, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("config", sorted(GENERATOR_PARAMS))
@pytest.mark.parametrize("global_channels", GLOBAL_CHANNELS)
@pytest.mark.parametrize("use_only_mean", [True, False])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_flow_matches_espnet_both_ways_and_inverts(config, global_channels, use_only_mean, dtype, atol):
    kwargs = dict(flow_kwargs(GENERATOR_PARAMS[config], global_channels), use_only_mean=use_only_mean)
    espnet = espnet_coupling.ResidualAffineCouplingBlock(**kwargs)
    ours = ResidualAffineCouplingBlock(**kwargs)
    # Random weights: ESPnet starts each coupling layer as the identity (zero projection).
    assert_same_layout_and_load_both_ways(espnet, ours)
    with torch.no_grad():  # keep the scales moderate so that the inverse stays well conditioned
        for module in (espnet, ours):
            for layer in module.flows[::2]:
                layer.proj.weight.mul_(0.1)
    espnet.to(dtype).eval()
    ours.to(dtype).eval()
    z, _, y_mask = padded(kwargs["in_channels"], [33, 20, 5], seed=3, dtype=dtype)
    g = speaker(global_channels, 3, dtype)
    with torch.no_grad():
        z_p = ours(z, y_mask, g=g)
        torch.testing.assert_close(z_p, espnet(z, y_mask, g=g), atol=atol, rtol=1e-5)
        z_back = ours(z_p, y_mask, g=g, inverse=True)
        torch.testing.assert_close(z_back, espnet(z_p, y_mask, g=g, inverse=True), atol=atol, rtol=1e-5)
    assert not torch.allclose(z_p, z)  # the random flow does something
    torch.testing.assert_close(z_back * y_mask, z * y_mask, atol=atol * 10, rtol=1e-5)


@pytest.mark.parametrize("global_channels", GLOBAL_CHANNELS)
@pytest.mark.parametrize("use_only_mean", [True, False])
def test_synthesis_on_prepacked_weights_matches_espnet(global_channels, use_only_mean):
    """Synthesis (inverse, batch 1 without padding, autograd off, CPU) runs on oneDNN weights,
    the latent zero-padded to the width grid (300 frames -> 320): plain weights the first time
    a width comes, then packed for it. The same z as ESPnet's flow on both, and new weights
    are picked up."""
    import copy

    kwargs = dict(flow_kwargs(LJSPEECH_GENERATOR_PARAMS, global_channels), use_only_mean=use_only_mean)
    espnet = espnet_coupling.ResidualAffineCouplingBlock(**kwargs).eval()
    ours = ResidualAffineCouplingBlock(**kwargs).eval()
    with torch.no_grad():  # a flow that acts: ESPnet starts every coupling at the identity
        for layer in espnet.flows[::2]:
            layer.proj.weight.normal_(0.0, 0.02)
    ours.load_state_dict(espnet.state_dict())
    z_p = torch.randn(1, kwargs["in_channels"], 300, generator=torch.Generator().manual_seed(5))
    mask, g = torch.ones(1, 1, 300), speaker(global_channels, 1)

    def planned_widths():
        return sorted(ours._packed_plans[torch.float32][1].by_width)

    with torch.inference_mode():
        expected = espnet(z_p, mask, g=g, inverse=True)
        assert not ours._packed_plans
        torch.testing.assert_close(ours(z_p, mask, g=g, inverse=True), expected, atol=1e-5, rtol=1e-5)
        assert planned_widths() == []  # met once: plain weights
        torch.testing.assert_close(ours(z_p, mask, g=g, inverse=True), expected, atol=1e-5, rtol=1e-5)
        assert planned_widths() == [320]
        with torch.no_grad():
            espnet.flows[0].proj.bias.add_(0.5)
        ours.load_state_dict(espnet.state_dict())
        changed = espnet(z_p, mask, g=g, inverse=True)
        assert not torch.allclose(changed, expected)
        torch.testing.assert_close(ours(z_p, mask, g=g, inverse=True), changed, atol=1e-5, rtol=1e-5)
        twin = copy.deepcopy(ours)  # copies leave the packed weights behind and rebuild them
        assert twin._packed_plans is None
        torch.testing.assert_close(twin(z_p, mask, g=g, inverse=True), changed, atol=1e-5, rtol=1e-5)
        # Another length (70 frames, padded to 72): plain weights, then a pack of its own
        # (the parameters changed: 320 has to come twice again).
        short = z_p[:, :, :70].contiguous()
        for widths in ([], [72]):
            torch.testing.assert_close(ours(short, mask[:, :, :70], g=g, inverse=True),
                                       espnet(short, mask[:, :, :70], g=g, inverse=True), atol=1e-5, rtol=1e-5)
            assert planned_widths() == widths


def test_flow_widths_that_pack_alike_share_their_packs():
    """oneDNN lays a weight out alike for most input widths: over 24 widths, each met twice,
    the flow keeps a few distinct packs of each weight (shared by the plans, byte for byte
    those a width of its own would get), and each width's z is still ESPnet's."""
    from espnet2_vits_ext.acceleration import packed_flow
    from espnet2_vits_ext.acceleration.packed_conv import MAX_LAYOUTS, _packed_weights, _raw_bytes, grid_width

    kwargs = flow_kwargs(LJSPEECH_GENERATOR_PARAMS, -1)
    espnet = espnet_coupling.ResidualAffineCouplingBlock(**kwargs).eval()
    ours = ResidualAffineCouplingBlock(**kwargs).eval()
    ours.load_state_dict(espnet.state_dict())
    widths = sorted({grid_width(8 * step) for step in range(8, 60)})  # 64-480 frames, on the grid
    generator = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        for frames in widths + widths:
            z_p = torch.randn(1, kwargs["in_channels"], frames, generator=generator)
            mask = torch.ones(1, 1, frames)
            torch.testing.assert_close(ours(z_p, mask, inverse=True), espnet(z_p, mask, inverse=True),
                                       atol=1e-5, rtol=1e-5)
    _, by_layout = ours._packed_plans[torch.float32]
    assert sorted(by_layout.by_width) == widths
    plans = {id(plan): plan for plan in by_layout.by_width.values()}
    assert len(plans) <= MAX_LAYOUTS < len(widths)  # (every width kept: none dropped)
    couplings = [layer for layer in ours.flows if hasattr(layer, "encoder")]
    for frames in (widths[0], widths[-1]):  # what the width would pack on its own
        own = [packed_flow._pack_coupling(layer, torch.float32, frames) for layer in couplings]
        for weight, shared in zip(_packed_weights(own), _packed_weights(by_layout.by_width[frames])):
            assert np.array_equal(_raw_bytes(weight), _raw_bytes(shared))
    per_position = zip(*(_packed_weights(plan) for plan in plans.values()))
    for packs in per_position:
        distinct = {id(weight): weight for weight in packs}.values()
        for weight in distinct:  # no two kept packs of a weight have the same bytes
            others = [other for other in distinct if other is not weight]
            assert all(not np.array_equal(_raw_bytes(weight), _raw_bytes(other)) for other in others)


@pytest.mark.parametrize("use_only_mean", [True, False])
def test_coupling_layer_and_flip_return_what_espnet_returns(use_only_mean):
    """Forward: (x, logdet); inverse: (x, None), where ESPnet returns x alone. Same values."""
    from espnet2.gan_tts.vits.flow import FlipFlow as EspnetFlipFlow

    kwargs = dict(in_channels=8, hidden_channels=8, kernel_size=3, layers=2, global_channels=4, use_only_mean=use_only_mean)
    espnet = espnet_coupling.ResidualAffineCouplingLayer(**kwargs)
    ours = ResidualAffineCouplingLayer(**kwargs)
    assert_same_layout_and_load_both_ways(espnet, ours)
    espnet.double().eval()
    ours.double().eval()
    x, _, mask = padded(8, [12, 6], dtype=torch.float64)
    g = speaker(4, 2, torch.float64)
    for inverse in (False, True):
        expected = as_tuple(espnet(x, mask, g=g, inverse=inverse))
        actual = ours(x, mask, g=g, inverse=inverse)
        flipped = FlipFlow()(x, mask, g=g, inverse=inverse)
        assert len(actual) == len(flipped) == 2  # the same arity both ways
        if inverse:
            assert actual[1] is None and flipped[1] is None
            actual, flipped = actual[:1], flipped[:1]
        assert_close_all(expected, actual, atol=1e-12)
        assert_close_all(as_tuple(EspnetFlipFlow()(x, mask, g=g, inverse=inverse)), flipped, atol=0)


def test_flow_gradients_match_espnet():
    kwargs = dict(flow_kwargs(TINY_GENERATOR_PARAMS, 6), use_only_mean=False)
    espnet = espnet_coupling.ResidualAffineCouplingBlock(**kwargs)
    ours = ResidualAffineCouplingBlock(**kwargs)
    assert_same_layout_and_load_both_ways(espnet, ours)
    espnet.double().train()
    ours.double().train()
    z, _, y_mask = padded(kwargs["in_channels"], [15, 8], dtype=torch.float64)
    g = speaker(6, 2, torch.float64)
    weighted_sum([espnet(z, y_mask, g=g)]).backward()
    weighted_sum([ours(z, y_mask, g=g)]).backward()
    assert_same_grads(espnet, ours, atol=1e-10, rtol=1e-9)


def test_flow_at_initialisation_is_the_identity_as_espnet():
    flow = ResidualAffineCouplingBlock(in_channels=8, hidden_channels=8, flows=2, layers=2)
    z, _, mask = padded(8, [10, 4])
    out = flow(z, mask)  # two flips cancel; zero projections add nothing
    torch.testing.assert_close(out * mask, z * mask, atol=0, rtol=0)


WAVENET_OPTIONS = [
    dict(),  # ESPnet's defaults: 30 layers in 3 stacks of dilations 1..512
    dict(
        kernel_size=5,
        layers=4,
        stacks=2,
        base_dilation=3,
        residual_channels=8,
        gate_channels=12,
        skip_channels=6,
        aux_channels=5,
        global_channels=4,
        use_first_conv=True,
        use_last_conv=True,
        scale_residual=True,
        scale_skip_connect=True,
        bias=False,
    ),
    dict(layers=1, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4, use_weight_norm=False, dropout_rate=0.3),
]


@pytest.mark.parametrize("options", WAVENET_OPTIONS, ids=["defaults", "everything", "one-layer"])
def test_wavenet_matches_espnet(options):
    espnet = espnet_wavenet.WaveNet(**options)
    ours = WaveNet(**options)
    assert_same_layout_and_load_both_ways(espnet, ours)
    assert ours.receptive_field_size == espnet.receptive_field_size
    espnet.double().eval()
    ours.double().eval()
    in_channels = 1 if options.get("use_first_conv") else options.get("residual_channels", 64)
    x, _, mask = padded(in_channels, [50, 31], dtype=torch.float64)
    aux = options.get("aux_channels", -1)
    c = padded(aux, [50, 50], seed=5, dtype=torch.float64)[0] if aux > 0 else None
    g = speaker(options.get("global_channels", -1), 2, torch.float64)
    for x_mask in (None, mask):
        with torch.no_grad():
            expected = espnet(x, x_mask, c=c, g=g)
            actual = ours(x, x_mask, c=c, g=g)
        torch.testing.assert_close(actual, expected, atol=1e-12, rtol=1e-10)
    if options.get("use_weight_norm", True):
        ours.remove_weight_norm()
        espnet.remove_weight_norm()
        assert [k for k in ours.state_dict() if k.endswith(("weight_g", "weight_v"))] == []
        with torch.no_grad():
            torch.testing.assert_close(ours(x, mask, c=c, g=g), espnet(x, mask, c=c, g=g), atol=1e-12, rtol=1e-10)
