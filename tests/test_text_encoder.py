"""Our text encoder (and its Conformer) against ESPnet's: keys, weights both ways, outputs, grads."""

import itertools
import subprocess
import sys

import pytest
import torch

from helpers.tiny_configs import TINY_GENERATOR_PARAMS
from helpers.espnet_parity import (
    assert_close_all,
    assert_same_grads,
    assert_same_layout_and_load_both_ways,
    signature_defaults,
    weighted_sum,
)

from espnet2_vits_ext.layers import relative_attention
from espnet2_vits_ext.vits.text_encoder import TextEncoder

espnet_text_encoder = pytest.importorskip("espnet2.gan_tts.vits.text_encoder")
espnet_vits = pytest.importorskip("espnet2.gan_tts.vits.vits")

# ESPnet's VITS defaults: egs2/ljspeech/tts1 conf/tuning/train_vits.yaml (78 tokens).
LJSPEECH_GENERATOR_PARAMS = dict(signature_defaults(espnet_vits.VITS)["generator_params"], vocabs=78)


def text_encoder_kwargs(p: dict) -> dict:
    """TextEncoder arguments from generator parameters, exactly as ESPnet's generator maps them."""
    return dict(
        vocabs=p["vocabs"],
        attention_dim=p["hidden_channels"],
        attention_heads=p["text_encoder_attention_heads"],
        linear_units=p["hidden_channels"] * p["text_encoder_ffn_expand"],
        blocks=p["text_encoder_blocks"],
        positionwise_layer_type=p["text_encoder_positionwise_layer_type"],
        positionwise_conv_kernel_size=p["text_encoder_positionwise_conv_kernel_size"],
        positional_encoding_layer_type=p["text_encoder_positional_encoding_layer_type"],
        self_attention_layer_type=p["text_encoder_self_attention_layer_type"],
        activation_type=p["text_encoder_activation_type"],
        normalize_before=p["text_encoder_normalize_before"],
        dropout_rate=p["text_encoder_dropout_rate"],
        positional_dropout_rate=p["text_encoder_positional_dropout_rate"],
        attention_dropout_rate=p["text_encoder_attention_dropout_rate"],
        conformer_kernel_size=p["text_encoder_conformer_kernel_size"],
        use_macaron_style=p["use_macaron_style_in_text_encoder"],
        use_conformer_conv=p["use_conformer_conv_in_text_encoder"],
    )


CONFIGS = {
    "tiny": text_encoder_kwargs(TINY_GENERATOR_PARAMS),
    "ljspeech": text_encoder_kwargs(LJSPEECH_GENERATOR_PARAMS),
}


def padded_batch(vocabs: int, lengths, seed: int = 0):
    """Random token ids (B, max(lengths)), padded positions holding random ids too."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(0, vocabs, (len(lengths), int(lengths.max())), generator=generator)
    return tokens, lengths


def build_pair(kwargs: dict, seed: int = 0):
    espnet = espnet_text_encoder.TextEncoder(**kwargs)
    ours = TextEncoder(**kwargs)
    assert_same_layout_and_load_both_ways(espnet, ours, seed)
    return espnet, ours


def compare_eval(espnet, ours, vocabs, lengths, dtype, atol, rtol=0.0, seed=0):
    espnet.to(dtype).eval()
    ours.to(dtype).eval()
    tokens, token_lengths = padded_batch(vocabs, lengths, seed)
    with torch.no_grad():
        expected = espnet(tokens, token_lengths)
        actual = ours(tokens, token_lengths)
    assert [t.shape for t in actual] == [t.shape for t in expected]
    assert_close_all(expected, actual, atol=atol, rtol=rtol)
    return actual


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_state_dict_layout_and_weights_load_both_ways(config):
    build_pair(CONFIGS[config])


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 2e-5), (torch.float64, 1e-11)])
def test_outputs_match_espnet_in_eval_mode(config, dtype, atol):
    kwargs = CONFIGS[config]
    espnet, ours = build_pair(kwargs)
    x, m, logs, x_mask = compare_eval(espnet, ours, kwargs["vocabs"], [23, 17, 1, 22], dtype, atol, rtol=1e-5)
    assert x.shape == (4, kwargs["attention_dim"], 23)
    assert x_mask.dtype == dtype and x_mask[2, 0].tolist() == [1.0] + [0.0] * 22
    assert torch.all(m[1, :, 17:] == 0) and torch.all(logs[1, :, 17:] == 0)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_gradients_match_espnet_in_training_mode(config):
    """Training mode without dropout (BatchNorm on batch statistics): same loss, same grads."""
    kwargs = dict(CONFIGS[config], dropout_rate=0.0, positional_dropout_rate=0.0, attention_dropout_rate=0.0)
    espnet, ours = build_pair(kwargs)
    espnet.double().train()
    ours.double().train()
    tokens, lengths = padded_batch(kwargs["vocabs"], [19, 7, 12])
    loss_espnet = weighted_sum(espnet(tokens, lengths))
    loss_ours = weighted_sum(ours(tokens, lengths))
    torch.testing.assert_close(loss_ours, loss_espnet, atol=1e-9, rtol=1e-10)
    loss_espnet.backward()
    loss_ours.backward()
    assert_same_grads(espnet, ours, atol=1e-9, rtol=1e-9)
    # BatchNorm running statistics were updated alike.
    for (key, a), b in zip(espnet.state_dict().items(), ours.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0, msg=key)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_seeded_dropout_matches_espnet_in_training_mode(config):
    """With dropout on and the same seed: the same masks, and the same random numbers left
    for what follows (a seeded GAN training step draws noise and segments next)."""
    kwargs = CONFIGS[config]
    assert kwargs["dropout_rate"] > 0
    espnet, ours = build_pair(kwargs)
    espnet.train()
    ours.train()
    tokens, lengths = padded_batch(kwargs["vocabs"], [19, 7, 12])
    torch.manual_seed(4)
    expected = espnet(tokens, lengths)
    expected_next = torch.rand(8)
    torch.manual_seed(4)
    actual = ours(tokens, lengths)
    assert torch.equal(torch.rand(8), expected_next)
    assert_close_all(expected, actual, atol=2e-5, rtol=1e-5)


POSITION_ATTENTION_PAIRS = [
    ("rel_pos", "rel_selfattn"),
    ("legacy_rel_pos", "legacy_rel_selfattn"),
    ("abs_pos", "selfattn"),
    ("scaled_abs_pos", "selfattn"),
]
ACTIVATIONS = ["swish", "relu", "tanh", "hardtanh", "selu"]
COMBINATIONS = list(
    itertools.product(
        POSITION_ATTENTION_PAIRS,
        ["linear", "conv1d", "conv1d-linear"],
        [True, False],  # normalize_before
        [True, False],  # use_macaron_style
        [True, False],  # use_conformer_conv
    )
)


@pytest.mark.parametrize(
    "pair,positionwise,normalize_before,macaron,conformer_conv",
    COMBINATIONS,
    ids=["-".join(map(str, (c[0][0],) + c[1:])) for c in COMBINATIONS],
)
def test_every_option_combination_matches_espnet(pair, positionwise, normalize_before, macaron, conformer_conv):
    index = COMBINATIONS.index((pair, positionwise, normalize_before, macaron, conformer_conv))
    kwargs = dict(
        vocabs=11,
        attention_dim=8,
        attention_heads=2,
        linear_units=12,
        blocks=2,
        positionwise_layer_type=positionwise,
        positionwise_conv_kernel_size=(1, 3, 5)[index % 3],
        positional_encoding_layer_type=pair[0],
        self_attention_layer_type=pair[1],
        activation_type=ACTIVATIONS[index % len(ACTIVATIONS)],
        normalize_before=normalize_before,
        use_macaron_style=macaron,
        use_conformer_conv=conformer_conv,
        conformer_kernel_size=(3, 5, 7)[index % 3],
    )
    espnet, ours = build_pair(kwargs, seed=index)
    compare_eval(espnet, ours, 11, [9, 4, 9, 1], torch.float64, atol=1e-12, seed=index)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_espnet(activation):
    kwargs = dict(
        vocabs=11,
        attention_dim=8,
        attention_heads=4,
        linear_units=16,
        blocks=1,
        positionwise_layer_type="linear",
        activation_type=activation,
        use_macaron_style=True,
        use_conformer_conv=True,
        conformer_kernel_size=3,
    )
    espnet, ours = build_pair(kwargs)
    compare_eval(espnet, ours, 11, [6, 3], torch.float64, atol=1e-12)


@pytest.mark.parametrize(
    "positional,attention",
    [
        ("rel_pos", "selfattn"),
        ("rel_pos", "legacy_rel_selfattn"),
        ("legacy_rel_pos", "rel_selfattn"),
        ("abs_pos", "rel_selfattn"),
        ("scaled_abs_pos", "legacy_rel_selfattn"),
        ("sinusoid", "selfattn"),
        ("abs_pos", "flash"),
    ],
)
def test_incompatible_or_unknown_types_are_refused_as_espnet_does(positional, attention):
    kwargs = dict(vocabs=5, attention_dim=8, positional_encoding_layer_type=positional, self_attention_layer_type=attention)
    with pytest.raises((AssertionError, ValueError)):
        espnet_text_encoder.TextEncoder(**kwargs)
    with pytest.raises(ValueError):
        TextEncoder(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(activation_type="gelu"), dict(positionwise_layer_type="conv2d"), dict(attention_heads=3)]
)
def test_unknown_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        TextEncoder(vocabs=5, attention_dim=8, **kwargs)


@pytest.mark.parametrize(
    "espnet_name,ours_kwargs",
    [
        ("PositionalEncoding", dict(cls="PositionalEncoding")),
        ("ScaledPositionalEncoding", dict(cls="PositionalEncoding", scaled=True)),
        ("RelPositionalEncoding", dict(cls="RelPositionalEncoding")),
        ("LegacyRelPositionalEncoding", dict(cls="RelPositionalEncoding", legacy=True)),
    ],
)
def test_positional_encodings_match_espnet_past_the_initial_table(espnet_name, ours_kwargs):
    """Inputs longer than the table (ESPnet: 5000 positions) rebuild it the same way."""
    from espnet.nets.pytorch_backend.transformer import embedding

    kwargs = dict(ours_kwargs)
    ours = getattr(relative_attention, kwargs.pop("cls"))(6, 0.0, max_len=8, **kwargs)
    espnet = getattr(embedding, espnet_name)(6, 0.0, max_len=8)
    assert list(ours.state_dict()) == list(espnet.state_dict())
    for length in (5, 13, 4, 13, 20):  # shorter, longer (rebuild), shorter again from the new table
        x = torch.randn(2, length, 6)
        expected, actual = espnet(x), ours(x)
        if isinstance(expected, tuple):
            assert_close_all(expected, actual, atol=0)
        else:
            assert actual[1] is None
            torch.testing.assert_close(actual[0], expected, atol=0, rtol=0)


def test_relative_shift_matches_espnet():
    from espnet.nets.pytorch_backend.transformer.attention import (
        LegacyRelPositionMultiHeadedAttention,
        RelPositionMultiHeadedAttention,
    )

    scores = torch.randn(2, 3, 7, 13)
    expected = RelPositionMultiHeadedAttention(3, 6, 0.0).rel_shift(scores)
    torch.testing.assert_close(relative_attention.rel_shift(scores), expected, atol=0, rtol=0)
    square = torch.randn(2, 3, 7, 7)
    expected = LegacyRelPositionMultiHeadedAttention(3, 6, 0.0).rel_shift(square)
    torch.testing.assert_close(relative_attention.legacy_rel_shift(square), expected, atol=0, rtol=0)


def test_our_modules_import_and_run_without_espnet():
    """Our encoder, posterior encoder and flow never import ESPnet (nor print its messages)."""
    code = (
        "import sys, torch\n"
        "from espnet2_vits_ext.vits.text_encoder import TextEncoder\n"
        "from espnet2_vits_ext.vits.posterior_encoder import PosteriorEncoder\n"
        "from espnet2_vits_ext.vits.flow import ResidualAffineCouplingBlock\n"
        "x, m, logs, mask = TextEncoder(9, 8, linear_units=16, blocks=1)(torch.randint(0, 9, (2, 5)), torch.tensor([5, 2]))\n"
        "z, _, _, y_mask = PosteriorEncoder(5, 8, 8, layers=2)(torch.randn(2, 5, 7), torch.tensor([7, 3]))\n"
        "ResidualAffineCouplingBlock(8, 8, flows=1, layers=1)(z, y_mask)\n"
        "assert not any(n == 'espnet' or n.startswith(('espnet.', 'espnet2.')) for n in sys.modules), "
        "sorted(n for n in sys.modules if n.startswith('espnet'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Flash Attention" not in done.stdout + done.stderr
