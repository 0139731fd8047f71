"""Stochastic duration predictor: the spline, the flows, the DDSConv block and the predictor.

Invariants (spline and flows inverted, log-determinants against autograd Jacobians) and
parity with ESPnet's installed modules (``espnet2/gan_tts/vits``): same state_dict, weights
loading both ways with strict=True, same outputs for the same weights and the same seed.
Parity runs in float64 with a tight tolerance (the same computation, up to rounding order)
and in float32 with the tolerance rounding needs.
"""

import pytest
import torch
from helpers.tiny_configs import TINY_GENERATOR_PARAMS
from espnet2.gan_tts.vits import duration_predictor as espnet_duration_predictor
from espnet2.gan_tts.vits import flow as espnet_flow
from espnet2.gan_tts.vits import vits as espnet_vits
from espnet2.gan_tts.vits.transform import piecewise_rational_quadratic_transform
from helpers.espnet_parity import signature_defaults

from espnet2_vits_ext.layers.dilated_depth_separable_conv import DilatedDepthSeparableConv
from espnet2_vits_ext.layers.duration_flows import ConvFlow, ElementwiseAffineFlow, LogFlow
from espnet2_vits_ext.layers.flip_flow import FlipFlow
from espnet2_vits_ext.vits.duration_predictor import StochasticDurationPredictor
from espnet2_vits_ext.layers.rational_quadratic_spline import rational_quadratic_spline


def predictor_kwargs(p: dict) -> dict:
    """StochasticDurationPredictor arguments as ESPnet's generator builds them (single speaker)."""
    return dict(
        channels=p["hidden_channels"],
        kernel_size=p["stochastic_duration_predictor_kernel_size"],
        dropout_rate=p["stochastic_duration_predictor_dropout_rate"],
        flows=p["stochastic_duration_predictor_flows"],
        dds_conv_layers=p["stochastic_duration_predictor_dds_conv_layers"],
    )


TINY = predictor_kwargs(TINY_GENERATOR_PARAMS)
# ESPnet's VITS defaults: egs2/ljspeech/tts1 conf/tuning/train_vits.yaml.
LJSPEECH = predictor_kwargs(signature_defaults(espnet_vits.VITS)["generator_params"])
CONFIGS = {"tiny": TINY, "ljspeech": LJSPEECH, "tiny_global": dict(TINY, global_channels=5)}
TIGHT = dict(rtol=1e-9, atol=1e-9)  # float64


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def perturb_(module: torch.nn.Module, std: float, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its initial value (zero-initialised spline projections
    would otherwise make every coupling layer trivial)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(std * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


def batch(channels: int, lengths=(13, 9, 4), global_channels=None, seed: int = 1):
    """Text features (B, C, T), mask (B, 1, T), integer durations (B, 1, T), g (B, G, 1)."""
    generator = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    x = torch.randn(len(lengths), channels, frames, generator=generator)
    mask = (torch.arange(frames)[None] < torch.tensor(lengths)[:, None]).to(x.dtype).unsqueeze(1)
    w = torch.randint(1, 9, mask.shape, generator=generator).to(x.dtype) * mask
    g = None if global_channels is None else torch.randn(len(lengths), global_channels, 1, generator=generator)
    return x, mask, w, g


def espnet_and_ours(config: dict, std: float = 0.1):
    espnet = perturb_(espnet_duration_predictor.StochasticDurationPredictor(**config), std)
    ours = StochasticDurationPredictor(**config)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    return espnet.eval(), ours.eval()


# ---------------------------------------------------------------- spline


def spline_params(shape, bins=10, seed=0, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    widths, heights = (scale * torch.randn(*shape, bins, generator=generator) for _ in range(2))
    return widths, heights, scale * torch.randn(*shape, bins - 1, generator=generator)


def spline_inputs(bound=5.0):
    """Inside, on and just off both bounds, far outside."""
    inside = torch.linspace(-bound, bound, 23)
    edges = torch.tensor([-bound - 1e-3, bound + 1e-3, -bound - 3.0, bound + 40.0])
    return torch.cat([inside, edges]).reshape(3, 9)


@pytest.mark.parametrize("inverse", [False, True])
def test_spline_matches_espnet(float64, inverse):
    x = spline_inputs()
    params = spline_params(x.shape)
    ours = rational_quadratic_spline(x, *params, inverse=inverse, tail_bound=5.0)
    theirs = piecewise_rational_quadratic_transform(
        x, *params, inverse=inverse, tails="linear", tail_bound=5.0
    )
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TIGHT)


def test_spline_inverse_undoes_forward(float64):
    x = spline_inputs()
    params = spline_params(x.shape)
    y, logdet = rational_quadratic_spline(x, *params, tail_bound=5.0)
    x_back, logdet_back = rational_quadratic_spline(y, *params, inverse=True, tail_bound=5.0)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logdet_back, -logdet, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("inverse", [False, True])
def test_spline_logdet_is_log_jacobian(float64, inverse):
    x = spline_inputs().flatten()
    params = spline_params(x.shape)
    jacobian = torch.autograd.functional.jacobian(
        lambda v: rational_quadratic_spline(v, *params, inverse=inverse, tail_bound=5.0)[0], x
    )
    _, logdet = rational_quadratic_spline(x, *params, inverse=inverse, tail_bound=5.0)
    diagonal = torch.diagonal(jacobian)
    torch.testing.assert_close(jacobian, torch.diag(diagonal))  # elementwise map
    torch.testing.assert_close(logdet, diagonal.log(), rtol=1e-8, atol=1e-8)


def test_spline_tails_and_bounds(float64):
    bound = 5.0
    params = spline_params((6,))
    outside = torch.tensor([-bound - 1e-6, bound + 1e-6, -7.0, 9.0, -1e4, 1e4])
    y, logdet = rational_quadratic_spline(outside, *params, tail_bound=bound)
    assert torch.equal(y, outside) and torch.equal(logdet, torch.zeros(6))

    # The bounds are fixed points, and the slope there is 1: continuous with the tails.
    step = 1e-6
    at = torch.tensor([-bound, bound, -bound + step, bound - step, -bound, bound])
    y, logdet = rational_quadratic_spline(at, *params, tail_bound=bound)
    torch.testing.assert_close(y[:2], at[:2], rtol=0, atol=1e-12)
    torch.testing.assert_close(y[2:4], at[2:4], rtol=0, atol=1e-9)
    torch.testing.assert_close(logdet[:2], torch.zeros(2), rtol=0, atol=1e-9)

    # Monotonic and onto [-bound, bound].
    x = torch.linspace(-bound, bound, 2001)
    one_spline = [p.expand(2001, -1) for p in spline_params((1,), seed=3)]
    y, _ = rational_quadratic_spline(x, *one_spline, tail_bound=bound)
    assert torch.all(y.diff() > 0)
    torch.testing.assert_close(y[[0, -1]], x[[0, -1]], rtol=0, atol=1e-12)


def test_spline_gradients_finite_everywhere(float64):
    x = spline_inputs().requires_grad_()
    params = [p.requires_grad_() for p in spline_params(x.shape)]
    y, logdet = rational_quadratic_spline(x, *params, inverse=True, tail_bound=5.0)
    (y.sum() + logdet.sum()).backward()
    for tensor in [x, *params]:
        assert torch.isfinite(tensor.grad).all()


def test_spline_rejects_too_many_minimal_bins():
    with pytest.raises(ValueError, match="too large"):
        rational_quadratic_spline(torch.zeros(2), *spline_params((2,), bins=10), min_bin_width=0.2)


# ---------------------------------------------------------------- flows

FLOWS = {
    "flip": lambda: (FlipFlow(), espnet_flow.FlipFlow()),
    "log": lambda: (LogFlow(), espnet_flow.LogFlow()),
    "affine": lambda: (ElementwiseAffineFlow(2), espnet_flow.ElementwiseAffineFlow(2)),
    "spline": lambda: (ConvFlow(2, 8, 3, layers=2), espnet_flow.ConvFlow(2, 8, 3, layers=2)),
}


def flow_case(name: str):
    """Our flow with perturbed weights, ESPnet's with the same, and an input (B, 2, T)."""
    ours, theirs = FLOWS[name]()
    perturb_(theirs, 0.5)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x, mask, _, _ = batch(2, lengths=(7, 5))
    x = 3 * x  # reach the spline's linear tails too
    if name == "log":
        x = x.abs() + 0.1
    g = torch.randn(2, 8, mask.size(2), generator=torch.Generator().manual_seed(4))
    return ours.eval(), theirs.eval(), x * mask, mask, (g if name == "spline" else None)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_inverse_undoes_forward(float64, name):
    ours, _, x, mask, g = flow_case(name)
    y, logdet = ours(x, mask, g=g)
    assert logdet.shape == (x.size(0),)
    x_back, nothing = ours(y, mask, g=g, inverse=True)
    assert nothing is None
    torch.testing.assert_close(x_back * mask, x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_logdet_is_log_jacobian(float64, name):
    ours, _, x, mask, g = flow_case(name)
    _, logdet = ours(x, mask, g=g)
    for b in range(x.size(0)):
        valid = mask[b, 0].bool()
        mask_b, g_b = mask[b : b + 1], None if g is None else g[b : b + 1]
        # (2, T, 2, T) for utterance b, then its valid frames only: (2 T_b, 2 T_b)
        jacobian = torch.autograd.functional.jacobian(lambda v: ours(v[None], mask_b, g=g_b)[0][0], x[b])
        jacobian = jacobian[:, valid][:, :, :, valid].reshape(2 * int(valid.sum()), -1)
        sign, log_abs_det = torch.linalg.slogdet(jacobian)
        assert sign != 0
        torch.testing.assert_close(log_abs_det, logdet[b], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_matches_espnet(float64, name):
    ours, theirs, x, mask, g = flow_case(name)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours(x, mask, g=g), theirs(x, mask, g=g)):
        torch.testing.assert_close(a, b, **TIGHT)
    torch.testing.assert_close(ours(x, mask, g=g, inverse=True)[0], theirs(x, mask, g=g, inverse=True), **TIGHT)


def test_dds_conv_matches_espnet_in_training_mode(float64):
    theirs = perturb_(espnet_flow.DilatedDepthSeparableConv(8, 3, layers=3, dropout_rate=0.5), 0.3)
    ours = DilatedDepthSeparableConv(8, 3, layers=3, dropout_rate=0.5)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x, mask, _, _ = batch(8)
    g = torch.randn(3, 8, 1)
    torch.manual_seed(3)
    expected = theirs(x, mask, g=g)
    torch.manual_seed(3)
    torch.testing.assert_close(ours(x, mask, g=g), expected, **TIGHT)  # same dropout draws


def test_dds_conv_inference_path_is_the_training_path_without_dropout(float64):
    """Eval mode runs the layers time-major, the depth-wise convs as shifted multiply-adds: the
    same numbers as the (B, C, T) path that training runs (here without dropout), padding
    included. Under tracing (ONNX export) the (B, C, T) path runs: a conv node per depth-wise conv."""
    dds = perturb_(DilatedDepthSeparableConv(8, 3, layers=3, dropout_rate=0.0), 0.3)
    x, mask, _, _ = batch(8)
    g = torch.randn(3, 8, 1)
    inference = dds.eval()(x, mask, g=g)
    torch.testing.assert_close(inference, dds.train()(x, mask, g=g), **TIGHT)
    assert torch.equal(inference * mask, inference)  # padding stays zero
    traced = torch.jit.trace(dds.eval(), (x, mask))
    assert sum(node.kind() == "aten::_convolution" for node in traced.inlined_graph.nodes()) == len(dds.convs)
    torch.testing.assert_close(traced(x, mask), dds(x, mask), **TIGHT)


# ---------------------------------------------------------------- predictor


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_state_dict_and_initialisation_match_espnet(config):
    torch.manual_seed(0)
    theirs = espnet_duration_predictor.StochasticDurationPredictor(**CONFIGS[config])
    torch.manual_seed(0)
    ours = StochasticDurationPredictor(**CONFIGS[config])
    theirs_state, ours_state = theirs.state_dict(), ours.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert torch.equal(ours_state[key], value), key  # same shapes and the same initial draws

    perturb_(ours, 0.1)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours_again = StochasticDurationPredictor(**CONFIGS[config])
    ours_again.load_state_dict(theirs.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(ours_again.state_dict().values(), ours.state_dict().values()))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_outputs_match_espnet(float64, config):
    espnet, ours = espnet_and_ours(CONFIGS[config])
    x, mask, w, g = batch(CONFIGS[config]["channels"], global_channels=CONFIGS[config].get("global_channels"))
    calls = [
        dict(w=w),  # training loss: NLL (B,) with durations
        dict(inverse=True, noise_scale=0.0),
        dict(inverse=True, noise_scale=0.8),
    ]
    for kwargs in calls:
        torch.manual_seed(11)
        expected = espnet(x, mask, g=g, **kwargs)
        torch.manual_seed(11)
        result = ours(x, mask, g=g, **kwargs)
        assert result.shape == expected.shape == ((3,) if "w" in kwargs else (3, 1, x.size(2)))
        torch.testing.assert_close(result, expected, **TIGHT)


@pytest.mark.parametrize("config", ["tiny", "ljspeech"])
def test_outputs_match_espnet_float32(config):
    espnet, ours = espnet_and_ours(CONFIGS[config], std=0.02)
    x, mask, w, _ = batch(CONFIGS[config]["channels"])
    for kwargs in [dict(w=w), dict(inverse=True, noise_scale=0.0), dict(inverse=True, noise_scale=0.8)]:
        torch.manual_seed(11)
        expected = espnet(x, mask, **kwargs)
        torch.manual_seed(11)
        torch.testing.assert_close(ours(x, mask, **kwargs), expected, rtol=1e-4, atol=1e-4)


def test_training_mode_matches_espnet_for_a_seed(float64):
    espnet, ours = espnet_and_ours(TINY)
    espnet.train()
    ours.train()
    x, mask, w, _ = batch(TINY["channels"])
    torch.manual_seed(5)
    expected = espnet(x, mask, w=w)
    torch.manual_seed(5)
    torch.testing.assert_close(ours(x, mask, w=w), expected, **TIGHT)  # dropout and noise alike


def test_explicit_noise_is_the_seeded_noise(float64):
    _, ours = espnet_and_ours(TINY)
    x, mask, w, _ = batch(TINY["channels"])
    torch.manual_seed(2)
    noise = torch.randn(3, 2, x.size(2))
    for kwargs in [dict(w=w), dict(inverse=True, noise_scale=0.7)]:
        torch.manual_seed(2)
        seeded = ours(x, mask, **kwargs)
        torch.testing.assert_close(ours(x, mask, noise=noise, **kwargs), seeded, rtol=0, atol=0)


def test_loss_trains_the_predictor_only(float64):
    _, ours = espnet_and_ours(TINY)
    ours.train()
    x, mask, w, _ = batch(TINY["channels"])
    x.requires_grad_()
    nll = ours(x, mask, w=w)
    assert nll.shape == (3,) and torch.isfinite(nll).all()
    nll.sum().backward()
    assert x.grad is None  # stop-gradient into the text encoder (paper Sec. 2.2.2)
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters() if p.grad is not None)
    assert all(p.grad is not None for p in ours.parameters())


def test_bad_calls_fail_with_a_message():
    ours = StochasticDurationPredictor(**TINY)
    x, mask, _, g = batch(TINY["channels"], global_channels=5)
    with pytest.raises(ValueError, match="durations w are required"):
        ours(x, mask)
    with pytest.raises(ValueError, match="global_channels"):
        ours(x, mask, g=g, inverse=True)
