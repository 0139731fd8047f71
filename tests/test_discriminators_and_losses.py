"""Our discriminators and losses against ESPnet's: keys, strict loading both ways, values.

Discriminators: every ``discriminator_type`` ESPnet's VITS accepts, with the tiny test
parameters and with ESPnet's defaults (VITS's ``discriminator_params`` for the
multi-scale-multi-period one, the class defaults for the others). Losses: every switch,
on real discriminator outputs, plus finiteness under bf16/fp16 autocast.
"""

import copy
import itertools

import pytest
import torch
from helpers.tiny_configs import TINY_DISCRIMINATOR_PARAMS, TINY_MEL_LOSS_PARAMS
from helpers.espnet_parity import signature_defaults
from espnet2.gan_tts.hifigan import loss as espnet_loss
from espnet2.gan_tts.vits import loss as espnet_vits_loss
from espnet2.gan_tts.vits import vits as espnet_vits

from espnet2_vits_ext.vits import espnet_defaults
from espnet2_vits_ext.vits.losses import adversarial as adversarial_losses, kl as kl_loss, mel as mel_loss
from espnet2_vits_ext.vits.discriminators.multi_scale_multi_period import AVAILABLE_DISCRIMINATORS

VITS_DEFAULTS = signature_defaults(espnet_vits.VITS)
MSMPD = "hifigan_multi_scale_multi_period_discriminator"
TINY_PERIOD = dict(TINY_DISCRIMINATOR_PARAMS["period_discriminator_params"])
TINY_SCALE = dict(TINY_DISCRIMINATOR_PARAMS["scale_discriminator_params"])

DISCRIMINATOR_CASES = {
    "msmpd_tiny": (MSMPD, TINY_DISCRIMINATOR_PARAMS),
    # ESPnet's VITS default: its period discriminators are also the multi-period default
    "msmpd_vits_default": (MSMPD, VITS_DEFAULTS["discriminator_params"]),
    "msmpd_official_norm": (MSMPD, dict(TINY_DISCRIMINATOR_PARAMS, scales=2, follow_official_norm=True)),
    "period_tiny": ("hifigan_period_discriminator", dict(TINY_PERIOD, period=3)),
    "period_spectral": (
        "hifigan_period_discriminator",
        dict(TINY_PERIOD, period=5, use_weight_norm=False, use_spectral_norm=True),
    ),
    "scale_tiny": ("hifigan_scale_discriminator", TINY_SCALE),
    "multi_period_tiny": ("hifigan_multi_period_discriminator", dict(periods=[2, 3], discriminator_params=TINY_PERIOD)),
    "multi_scale_tiny": (
        "hifigan_multi_scale_discriminator",
        dict(scales=3, discriminator_params=TINY_SCALE, follow_official_norm=True),
    ),
    "multi_scale_default": ("hifigan_multi_scale_discriminator", {}),
}


def build_discriminators(name, seed=0):
    dtype, params = DISCRIMINATOR_CASES[name]
    torch.manual_seed(seed)
    ref = espnet_vits.AVAILABLE_DISCRIMINATORS[dtype](**copy.deepcopy(params))
    torch.manual_seed(seed + 100)
    ours = AVAILABLE_DISCRIMINATORS[dtype](**copy.deepcopy(params))
    return ref, ours


def flat(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for o in outputs for t in flat(o)]


def assert_outputs_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, (list, tuple)):
            assert_outputs_equal(x, y)
        else:
            assert x.shape == y.shape
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_discriminator_types_are_espnets():
    assert set(AVAILABLE_DISCRIMINATORS) == set(espnet_vits.AVAILABLE_DISCRIMINATORS)


@pytest.mark.parametrize("name", sorted(espnet_vits.AVAILABLE_DISCRIMINATORS))
def test_discriminator_defaults_are_espnets(name):
    assert signature_defaults(AVAILABLE_DISCRIMINATORS[name]) == signature_defaults(
        espnet_vits.AVAILABLE_DISCRIMINATORS[name]
    )


def test_fast_vits_defaults_are_espnet_vits_defaults():
    """``tts: fast_vits`` shows in ``--print_config`` what ``tts: vits`` shows."""
    assert espnet_defaults.DEFAULT_GENERATOR_PARAMS == VITS_DEFAULTS["generator_params"]
    assert espnet_defaults.DEFAULT_DISCRIMINATOR_PARAMS == VITS_DEFAULTS["discriminator_params"]
    assert espnet_defaults.DEFAULT_ADVERSARIAL_LOSS_PARAMS == VITS_DEFAULTS["generator_adv_loss_params"]
    assert espnet_defaults.DEFAULT_ADVERSARIAL_LOSS_PARAMS == VITS_DEFAULTS["discriminator_adv_loss_params"]
    assert espnet_defaults.DEFAULT_FEAT_MATCH_LOSS_PARAMS == VITS_DEFAULTS["feat_match_loss_params"]
    assert espnet_defaults.DEFAULT_MEL_LOSS_PARAMS == VITS_DEFAULTS["mel_loss_params"]


@pytest.mark.parametrize("name", list(DISCRIMINATOR_CASES))
def test_discriminator_keys_loading_and_outputs(name):
    ref, ours = build_discriminators(name)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert all(our_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)

    full_size = name.endswith("default")
    # 1031 / 601: not a multiple of any period (exercises the reflect padding)
    x = torch.randn(1 if full_size else 2, 1, 601 if full_size else 1031, generator=torch.Generator().manual_seed(0))
    for training in (False, True):  # train mode also runs spectral norm's power iteration
        ref.train(training)
        ours.train(training)
        out_ref, out = ref(x), ours(x)
        assert_outputs_equal(out, out_ref)

    # back: ESPnet loads ours after we change them
    with torch.no_grad():
        for p in ours.parameters():
            p.mul_(1.1)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    assert_outputs_equal(ours(x), ref(x))


def test_scale_discriminator_loads_checkpoints_saved_without_norm():
    """ESPnet's fix for checkpoints whose configured norm was never applied."""
    kind = AVAILABLE_DISCRIMINATORS[MSMPD]
    ref = espnet_vits.AVAILABLE_DISCRIMINATORS[MSMPD](
        **dict(TINY_DISCRIMINATOR_PARAMS, scale_discriminator_params=dict(TINY_SCALE, use_weight_norm=False))
    )
    ours = kind(**TINY_DISCRIMINATOR_PARAMS)  # configured with weight norm
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    x = torch.randn(1, 1, 512)
    assert_outputs_equal(ours(x), ref(x))


def discriminator_outputs(seed):
    """Real multi-scale-multi-period outputs (list of lists) for the loss tests."""
    torch.manual_seed(seed)
    disc = AVAILABLE_DISCRIMINATORS[MSMPD](**TINY_DISCRIMINATOR_PARAMS)
    y_hat = torch.randn(2, 1, 640, requires_grad=True)
    y = torch.randn(2, 1, 640)
    return disc(y_hat), disc(y), y_hat


@pytest.mark.parametrize("average,loss_type", list(itertools.product([True, False], ["mse", "hinge"])))
def test_adversarial_losses_match(average, loss_type):
    p_hat, p, _ = discriminator_outputs(0)
    kwargs = dict(average_by_discriminators=average, loss_type=loss_type)
    gen_ref, gen = espnet_loss.GeneratorAdversarialLoss(**kwargs), adversarial_losses.GeneratorAdversarialLoss(**kwargs)
    dis_ref = espnet_loss.DiscriminatorAdversarialLoss(**kwargs)
    dis = adversarial_losses.DiscriminatorAdversarialLoss(**kwargs)
    for outs_hat, outs in [(p_hat, p), ([o[-1] for o in p_hat], [o[-1] for o in p]), (p_hat[0][-1], p[0][-1])]:
        torch.testing.assert_close(gen(outs_hat), gen_ref(outs_hat))
        for a, b in zip(dis(outs_hat, outs), dis_ref(outs_hat, outs)):
            torch.testing.assert_close(a, b)
    assert not list(gen.state_dict()) and not list(dis.state_dict())


@pytest.mark.parametrize("by_layers,by_disc,final", list(itertools.product([True, False], repeat=3)))
def test_feature_match_loss_matches(by_layers, by_disc, final):
    p_hat, p, y_hat = discriminator_outputs(1)
    kwargs = dict(average_by_layers=by_layers, average_by_discriminators=by_disc, include_final_outputs=final)
    ref = espnet_loss.FeatureMatchLoss(**kwargs)(p_hat, p)
    ours = adversarial_losses.FeatureMatchLoss(**kwargs)(p_hat, p)
    torch.testing.assert_close(ours, ref)
    (grad_ours,) = torch.autograd.grad(ours, y_hat, retain_graph=True)
    (grad_ref,) = torch.autograd.grad(ref, y_hat)
    torch.testing.assert_close(grad_ours, grad_ref)


MEL_CASES = {
    "tiny": TINY_MEL_LOSS_PARAMS,
    "vits_default": VITS_DEFAULTS["mel_loss_params"],
    "log10_win": dict(TINY_MEL_LOSS_PARAMS, log_base=10.0, win_length=48, fmin=50, fmax=7000),
    "log2_class_default": dict(log_base=2.0),
}


@pytest.mark.parametrize("name", list(MEL_CASES))
def test_mel_loss_matches(name):
    params = MEL_CASES[name]
    ref = espnet_loss.MelSpectrogramLoss(**params)
    ours = mel_loss.MelSpectrogramLoss(**params)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["wav_to_mel.logmel.melmat"]
    torch.testing.assert_close(ours.state_dict()["wav_to_mel.logmel.melmat"], ref.state_dict()["wav_to_mel.logmel.melmat"])
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)

    gen = torch.Generator().manual_seed(0)
    y_hat = (0.3 * torch.randn(2, 1, 4096, generator=gen)).requires_grad_()
    y = 0.3 * torch.randn(2, 1, 4096, generator=gen)
    for use_mse in (False, True):
        loss_ref, loss = ref(y_hat, y, use_mse=use_mse), ours(y_hat, y, use_mse=use_mse)
        torch.testing.assert_close(loss, loss_ref)
        (g_ref,) = torch.autograd.grad(loss_ref, y_hat)
        (g,) = torch.autograd.grad(loss, y_hat)
        torch.testing.assert_close(g, g_ref)
    # with a ground-truth linear spectrogram instead of the waveform
    spec = ref.wav_to_mel.stft(y.squeeze(1))[0].pow(2).sum(-1).clamp(min=1e-10).sqrt()
    torch.testing.assert_close(ours(y_hat, None, spec=spec), ref(y_hat, None, spec=spec))
    torch.testing.assert_close(ours.wav_to_mel(y.squeeze(1))[0], ref.wav_to_mel(y.squeeze(1))[0])


def kl_inputs(seed, dtype=torch.float32, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 4, 7)
    z_p, logs_q, m_p, logs_p = (scale * torch.randn(shape, generator=gen) for _ in range(4))
    z_mask = torch.ones(2, 1, 7)
    z_mask[1, :, 5:] = 0
    return [t.to(dtype) for t in (z_p, logs_q, m_p, logs_p, z_mask)]


def test_kl_losses_match():
    args = kl_inputs(0)
    torch.testing.assert_close(kl_loss.KLDivergenceLoss()(*args), espnet_vits_loss.KLDivergenceLoss()(*args))
    m_q, logs_q, m_p, logs_p, _ = args
    torch.testing.assert_close(
        kl_loss.KLDivergenceLossWithoutFlow()(m_q, logs_q, m_p, logs_p),
        espnet_vits_loss.KLDivergenceLossWithoutFlow()(m_q, logs_q, m_p, logs_p),
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_losses_are_float32_and_finite_under_autocast(dtype):
    """Half-precision inputs under autocast: every loss in float32, finite, as in fp32."""
    torch.manual_seed(0)
    disc = AVAILABLE_DISCRIMINATORS[MSMPD](**TINY_DISCRIMINATOR_PARAMS)
    y_hat = torch.randn(2, 1, 640, requires_grad=True)
    y = torch.randn(2, 1, 640)
    mel = mel_loss.MelSpectrogramLoss(**TINY_MEL_LOSS_PARAMS)
    with torch.autocast("cpu", dtype=dtype):
        p_hat, p = disc(y_hat), disc(y)
        # autocast really ran the discriminator's convolutions in the half dtype
        assert all(t.dtype == dtype for o in p_hat + p for t in o)
        # scores large enough that their squares overflow fp16
        p_hat_big = [[t.to(dtype) * 0 + 300.0 for t in o] for o in p_hat]
        losses = dict(
            gen=adversarial_losses.GeneratorAdversarialLoss()(p_hat),
            gen_big=adversarial_losses.GeneratorAdversarialLoss()(p_hat_big),
            fm=adversarial_losses.FeatureMatchLoss()(p_hat, p),
            mel=mel(y_hat.to(dtype), y.to(dtype)),
            kl=kl_loss.KLDivergenceLoss()(*kl_inputs(0, dtype, scale=6.0)),
        )
        real, fake = adversarial_losses.DiscriminatorAdversarialLoss()(p_hat_big, p)
        losses.update(real=real, fake=fake)
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), name
    torch.testing.assert_close(losses["gen_big"], torch.tensor(299.0**2))
    ref_kl = espnet_vits_loss.KLDivergenceLoss()(*[t.float() for t in kl_inputs(0, dtype, scale=6.0)])
    torch.testing.assert_close(losses["kl"], ref_kl)
    sum(losses.values()).backward()
    assert torch.isfinite(y_hat.grad).all()
