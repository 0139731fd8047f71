"""FastVITS against ESPnet's installed VITS: same weights in, same waveforms and losses out."""

import copy
import inspect
import warnings

import pytest
import torch

from helpers.tiny_configs import TINY_AUX_CHANNELS, TINY_VOCAB, tiny_conditioned_tts_conf, tiny_tts_conf
from espnet2_vits_ext.vits.fast_vits import FastVITS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ESPnet's "Cython version is not available"
    from espnet2.gan_tts.vits import VITS

HOP = 16  # product of the tiny decoder's upsample scales

# Global conditioning cases: the generator_params each sets (None: unconditioned).
CONDITIONINGS = {
    "none": None,
    "sids": dict(spks=3),
    "spembs": dict(spk_embed_dim=5),
    "lids": dict(langs=2),
    "all": dict(spks=3, spk_embed_dim=5, langs=2),
}

# ESPnet's defaults are the egs2/ljspeech/tts1 train_vits.yaml values.
LJSPEECH_VOCAB, LJSPEECH_BINS, LJSPEECH_HOP = 80, 513, 256


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere: initial ones hide bugs (the flow starts as identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            values = torch.randn(parameter.shape, generator=generator) * 0.2
            parameter.copy_(values.abs() + 0.5 if name.endswith("weight_g") else values)


def _pair(conf: dict, idim: int = TINY_VOCAB, odim: int = TINY_AUX_CHANNELS, seed: int = 0):
    """ESPnet's VITS with random weights and ours loaded from it, both in eval mode."""
    torch.manual_seed(seed)
    espnet = VITS(idim=idim, odim=odim, **copy.deepcopy(conf))
    _randomize(espnet.generator, seed)
    ours = FastVITS(idim=idim, odim=odim, **copy.deepcopy(conf))
    ours.load_state_dict(espnet.state_dict(), strict=True)
    return espnet.eval(), ours.eval()


def _conditioned_conf(case: str) -> dict:
    params = CONDITIONINGS[case]
    return tiny_tts_conf() if params is None else tiny_conditioned_tts_conf(**params)


def _conditioning(case: str, batch_size: int) -> dict:
    """The case's inputs: ``sids``/``lids`` (B, 1), ``spembs`` (B, spk_embed_dim)."""
    params = CONDITIONINGS[case] or {}
    generator = torch.Generator().manual_seed(23)
    utterances = torch.arange(batch_size).view(-1, 1)
    inputs = {}
    if "spks" in params:
        inputs["sids"] = (utterances + 1) % params["spks"]
    if "spk_embed_dim" in params:
        inputs["spembs"] = torch.randn(batch_size, params["spk_embed_dim"], generator=generator)
    if "langs" in params:
        inputs["lids"] = (utterances + 1) % params["langs"]
    return inputs


def _first_utterance(conditioning: dict) -> dict:
    """Conditioning of ``inference``: ids (1,), embedding (spk_embed_dim,)."""
    return {key: value[0] for key, value in conditioning.items()}


def _missing_layer_drop_draws(espnet: VITS, ours: FastVITS) -> int:
    """How many CPU uniforms to draw so that our RNG stream follows ESPnet's.

    ESPnet's Conformer (``MultiSequential``) draws one uniform per block on every call,
    for layer drop, even in eval mode. The text encoder is the first random consumer of
    every call, so drawing them right after seeding is equivalent.
    """
    text, lengths = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    torch.manual_seed(0)
    espnet.generator.text_encoder(text, lengths)
    after_espnet = torch.get_rng_state()
    torch.manual_seed(0)
    ours.generator.text_encoder(text, lengths)
    if torch.equal(torch.get_rng_state(), after_espnet):
        return 0
    blocks = len(espnet.generator.text_encoder.encoder.encoders)
    torch.manual_seed(0)
    torch.empty(blocks).uniform_()
    assert torch.equal(torch.get_rng_state(), after_espnet), "RNG streams differ otherwise"
    return blocks


def _seed(seed: int, extra_draws: int = 0) -> None:
    torch.manual_seed(seed)
    if extra_draws:
        torch.empty(extra_draws).uniform_()


def _batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(1, TINY_VOCAB, (3, 8), generator=generator)
    text_lengths = torch.tensor([8, 5, 3])
    feats_lengths = torch.tensor([30, 21, 9])
    feats = torch.randn(3, 30, TINY_AUX_CHANNELS, generator=generator)
    speech = torch.randn(3, 30 * HOP, generator=generator) * 0.3
    return dict(
        text=text,
        text_lengths=text_lengths,
        feats=feats,
        feats_lengths=feats_lengths,
        speech=speech,
        speech_lengths=feats_lengths * HOP,
    )


def _assert_same_dict(expected: dict, actual: dict, atol: float) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=atol, rtol=1e-5, msg=key)


def _assert_same_losses(expected: dict, actual: dict) -> None:
    """Same ``optim_idx``, ``weight``, loss and every term in ``stats``."""
    assert actual["optim_idx"] == expected["optim_idx"]
    assert torch.equal(actual["weight"], expected["weight"])
    assert actual["stats"].keys() == expected["stats"].keys()
    for key, value in expected["stats"].items():
        torch.testing.assert_close(actual["stats"][key], value, rtol=1e-5, atol=1e-5, msg=key)
    torch.testing.assert_close(actual["loss"], expected["loss"], rtol=1e-5, atol=1e-5)


def _assert_same_discriminator_outputs(expected, actual) -> None:
    """Every layer's output of every sub-discriminator (feature matching uses them all)."""
    assert len(actual) == len(expected)
    for index, (expected_layers, actual_layers) in enumerate(zip(expected, actual)):
        assert len(actual_layers) == len(expected_layers)
        for layer, (e, a) in enumerate(zip(expected_layers, actual_layers)):
            torch.testing.assert_close(
                a, e, rtol=1e-5, atol=1e-6, msg=lambda m, i=index, j=layer: f"{i}/{j}: {m}"
            )


def _assert_same_gradients(espnet: VITS, ours: FastVITS) -> None:
    ours_parameters = dict(ours.named_parameters())
    for name, parameter in espnet.named_parameters():
        mine = ours_parameters[name]
        assert (parameter.grad is None) == (mine.grad is None), name
        if parameter.grad is not None:
            torch.testing.assert_close(mine.grad, parameter.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_state_dict_keys_and_loading_both_ways():
    espnet, ours = _pair(tiny_tts_conf())
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in espnet.state_dict().items()
    ]
    _randomize(ours, seed=5)
    espnet.load_state_dict(ours.state_dict(), strict=True)
    for key, value in ours.state_dict().items():
        assert torch.equal(espnet.state_dict()[key], value), key


# Sentence lengths: 9 tokens, and 37, which synthesis pads to the token grid (40: every new
# length would build oneDNN kernels of its own) for the duration predictor.
SENTENCE_TOKENS = [9, 37]


@pytest.mark.parametrize("tokens", SENTENCE_TOKENS)
def test_deterministic_inference_matches_espnet(tokens):
    espnet, ours = _pair(tiny_tts_conf())
    text = torch.randint(1, TINY_VOCAB, (tokens,), generator=torch.Generator().manual_seed(1))
    options = dict(noise_scale=0.0, noise_scale_dur=0.0, alpha=1.3)
    with torch.no_grad():
        expected, actual = espnet.inference(text, **options), ours.inference(text, **options)
    _assert_same_dict(expected, actual, atol=1e-5)
    assert actual["wav"].numel() == actual["duration"].sum().item() * HOP


@pytest.mark.parametrize("tokens", SENTENCE_TOKENS)
def test_sampled_inference_matches_espnet_with_the_same_seed(tokens):
    espnet, ours = _pair(tiny_tts_conf())
    extra = _missing_layer_drop_draws(espnet, ours)
    text = torch.randint(1, TINY_VOCAB, (tokens,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _seed(3)
        expected = espnet.inference(text, max_len=20, alpha=2.0)
        _seed(3, extra)
        actual = ours.inference(text, max_len=20, alpha=2.0)
    _assert_same_dict(expected, actual, atol=1e-5)
    assert actual["wav"].numel() == min(20, int(actual["duration"].sum())) * HOP


@pytest.mark.parametrize("conditioning", list(CONDITIONINGS))
def test_given_durations_match_espnet_and_set_the_length(conditioning):
    espnet, ours = _pair(_conditioned_conf(conditioning))
    text = torch.randint(1, TINY_VOCAB, (6,), generator=torch.Generator().manual_seed(4))
    durations = torch.tensor([2.0, 1.0, 4.0, 3.0, 1.0, 5.0])
    options = dict(durations=durations, noise_scale=0.0)
    options.update(_first_utterance(_conditioning(conditioning, batch_size=1)))
    with torch.no_grad():
        expected, actual = espnet.inference(text, **options), ours.inference(text, **options)
    _assert_same_dict(expected, actual, atol=1e-5)
    assert actual["wav"].numel() == int(durations.sum()) * HOP
    assert torch.equal(actual["att_w"].sum(0), durations)


@pytest.mark.parametrize("conditioning", list(CONDITIONINGS))
def test_teacher_forcing_with_feats_matches_espnet(conditioning):
    espnet, ours = _pair(_conditioned_conf(conditioning))
    extra = _missing_layer_drop_draws(espnet, ours)
    batch = _batch(5)
    text, feats = batch["text"][0], batch["feats"][0]
    options = dict(feats=feats, use_teacher_forcing=True)
    options.update(_first_utterance(_conditioning(conditioning, batch_size=1)))
    with torch.no_grad():
        _seed(6)
        expected = espnet.inference(text, **options)
        _seed(6, extra)
        actual = ours.inference(text, **options)
    _assert_same_dict(expected, actual, atol=1e-5)
    assert actual["wav"].numel() == feats.size(0) * HOP
    assert actual["duration"].sum().item() == feats.size(0)


def test_speaker_and_language_conditioning_matches_espnet():
    espnet, ours = _pair(tiny_conditioned_tts_conf(spks=3, langs=2, spk_embed_dim=5))
    assert (ours.spks, ours.langs, ours.spk_embed_dim) == (3, 2, 5)
    text = torch.randint(1, TINY_VOCAB, (5,), generator=torch.Generator().manual_seed(7))
    conditioning = dict(sids=torch.tensor([2]), lids=torch.tensor([1]), spembs=torch.randn(5))
    with torch.no_grad():
        expected = espnet.inference(text, noise_scale=0.0, noise_scale_dur=0.0, **conditioning)
        actual = ours.inference(text, noise_scale=0.0, noise_scale_dur=0.0, **conditioning)
    _assert_same_dict(expected, actual, atol=1e-5)
    with pytest.raises(ValueError, match="sids required"):
        ours.inference(text, lids=conditioning["lids"], spembs=conditioning["spembs"])


# Conditioning reaches the discriminator turn only through the generated windows (the
# embeddings get no gradient there), so that turn runs unconditioned only, for time.
@pytest.mark.parametrize(
    "forward_generator, conditioning",
    [(True, case) for case in CONDITIONINGS] + [(False, "none")],
)
def test_losses_stats_and_gradients_match_espnet(forward_generator, conditioning):
    espnet, ours = _pair(_conditioned_conf(conditioning))
    _randomize(espnet.discriminator, 8)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    extra = _missing_layer_drop_draws(espnet, ours)
    batch = dict(_batch(9), **_conditioning(conditioning, batch_size=3))
    _seed(10)
    expected = espnet(**batch, forward_generator=forward_generator)
    _seed(10, extra)
    actual = ours(**batch, forward_generator=forward_generator)
    _assert_same_losses(expected, actual)
    expected["loss"].backward()
    actual["loss"].backward()
    _assert_same_gradients(espnet, ours)


def test_training_step_with_dropout_matches_espnet_in_both_turns():
    """A whole training step in train mode, dropout on (text encoder 0.1, duration
    predictor 0.5): with the same seed, the same random draws in the same order give the
    same losses and gradients as ESPnet's VITS, in the generator turn and in the
    discriminator turn that reuses its cached outputs."""
    conf = tiny_tts_conf()
    assert conf["generator_params"]["text_encoder_dropout_rate"] > 0
    assert conf["generator_params"]["stochastic_duration_predictor_dropout_rate"] > 0
    espnet, ours = _pair(conf)
    _randomize(espnet.discriminator, 17)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    extra = _missing_layer_drop_draws(espnet, ours)
    espnet.train()
    ours.train()
    batch = _batch(18)
    results = {}
    for name, model, draws in (("espnet", espnet, 0), ("ours", ours, extra)):
        _seed(19, draws)
        turns = []
        for forward_generator in (True, False):
            model.zero_grad(set_to_none=True)
            result = model(**batch, forward_generator=forward_generator)
            result["loss"].backward()
            gradients = {key: value.grad for key, value in model.named_parameters()}
            turns.append((result, gradients))
        results[name] = turns
    for (expected, expected_gradients), (actual, actual_gradients) in zip(results["espnet"], results["ours"]):
        _assert_same_losses(expected, actual)
        assert expected_gradients.keys() == actual_gradients.keys()
        for key, gradient in expected_gradients.items():
            assert (gradient is None) == (actual_gradients[key] is None), key
            if gradient is not None:
                torch.testing.assert_close(actual_gradients[key], gradient, rtol=1e-4, atol=1e-5, msg=key)
    # Dropout really drew: the same step in eval mode gives another generator loss.
    ours.eval()
    _seed(19, extra)
    assert not torch.allclose(ours(**batch, forward_generator=True)["loss"], results["ours"][0][0]["loss"])


def test_discriminator_outputs_match_espnet():
    espnet, ours = _pair(tiny_tts_conf())
    _randomize(espnet.discriminator, 11)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    waveform = torch.randn(2, 1, 4 * HOP * 5, generator=torch.Generator().manual_seed(12))
    _assert_same_discriminator_outputs(espnet.discriminator(waveform), ours.discriminator(waveform))


def test_generator_outputs_are_cached_for_the_discriminator_turn():
    _, ours = _pair(tiny_tts_conf())
    ours.train()
    calls = []
    ours.generator.register_forward_hook(lambda module, args, output: calls.append(1))
    batch = _batch(13)
    ours(**batch, forward_generator=True)
    ours(**batch, forward_generator=False)
    assert len(calls) == 1 and ours._cache is None
    ours.cache_generator_outputs = False
    ours(**batch, forward_generator=True)
    ours(**batch, forward_generator=False)
    assert len(calls) == 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_training_gives_finite_float32_losses(dtype):
    _, ours = _pair(tiny_tts_conf())
    ours.train()
    batch = _batch(14)
    with torch.autocast(device_type="cpu", dtype=dtype):
        for forward_generator in (True, False):
            result = ours(**batch, forward_generator=forward_generator)
            assert result["loss"].dtype == torch.float32
            assert torch.isfinite(result["loss"])
            result["loss"].backward()
            assert all(torch.isfinite(v) for v in result["stats"].values())


def test_unalignable_and_empty_inputs_are_clear_errors():
    _, ours = _pair(tiny_tts_conf())
    batch = _batch(15)
    batch["feats_lengths"] = torch.tensor([30, 4, 9])  # 5 tokens, 4 frames
    with pytest.raises(ValueError, match="batch index 1: 5 text tokens but only 4"):
        ours(**batch)
    with pytest.raises(ValueError, match="empty text"):
        ours.inference(torch.zeros(0, dtype=torch.long))


@pytest.fixture(scope="module")
def ljspeech_pair():
    """ESPnet's VITS at its defaults and ours loaded from it, random weights everywhere.

    At ESPnet's initialization the coupling and ConvFlow projections are zero (the flows
    are identities), which would hide bugs there. Built once for the LJSpeech tests:
    building and randomizing two 80M-parameter models dominates their time; the tests
    only run them in eval mode and never step or change them.
    """
    torch.manual_seed(0)
    # ESPnet's VITS writes vocabs/aux_channels into its default generator_params dict in
    # place; a copy keeps its signature's defaults intact for the other tests.
    defaults = inspect.signature(VITS).parameters["generator_params"].default
    espnet = VITS(idim=LJSPEECH_VOCAB, odim=LJSPEECH_BINS, generator_params=copy.deepcopy(defaults))
    _randomize(espnet, seed=16)
    ours = FastVITS(idim=LJSPEECH_VOCAB, odim=LJSPEECH_BINS)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    return espnet.eval(), ours.eval()


def _ljspeech_batch(seed: int, text_length: int = 20, frames: int = 60):
    """One short utterance at LJSpeech size (the decoder and discriminators dominate the time)."""
    generator = torch.Generator().manual_seed(seed)
    return dict(
        text=torch.randint(1, LJSPEECH_VOCAB, (1, text_length), generator=generator),
        text_lengths=torch.tensor([text_length]),
        feats=torch.randn(1, frames, LJSPEECH_BINS, generator=generator),
        feats_lengths=torch.tensor([frames]),
        speech=torch.randn(1, frames * LJSPEECH_HOP, generator=generator) * 0.3,
        speech_lengths=torch.tensor([frames * LJSPEECH_HOP]),
    )


def test_ljspeech_configuration_matches_espnet(ljspeech_pair):
    espnet, ours = ljspeech_pair
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in espnet.state_dict().items()
    ]
    espnet.load_state_dict(ours.state_dict(), strict=True)
    text = torch.randint(1, LJSPEECH_VOCAB, (10,), generator=torch.Generator().manual_seed(17))
    durations = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 2.0, 1.0, 3.0, 2.0, 1.0])
    with torch.no_grad():
        for options in (
            dict(noise_scale=0.0, noise_scale_dur=0.0, alpha=1.5),
            dict(durations=durations, noise_scale=0.0),
        ):
            expected, actual = espnet.inference(text, **options), ours.inference(text, **options)
            _assert_same_dict(expected, actual, atol=1e-5)
            assert actual["wav"].numel() == actual["duration"].sum().item() * LJSPEECH_HOP
            # Random weights: at ESPnet's initialization every token would get one frame.
            assert actual["duration"].max() > 1
        waveform = torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(18)) * 0.3
        _assert_same_discriminator_outputs(
            espnet.discriminator(waveform), ours.discriminator(waveform)
        )


def test_ljspeech_teacher_forcing_matches_espnet(ljspeech_pair):
    espnet, ours = ljspeech_pair
    extra = _missing_layer_drop_draws(espnet, ours)
    batch = _ljspeech_batch(19, text_length=16, frames=40)
    text, feats = batch["text"][0], batch["feats"][0]
    with torch.no_grad():
        _seed(20)
        expected = espnet.inference(text, feats=feats, use_teacher_forcing=True)
        _seed(20, extra)
        actual = ours.inference(text, feats=feats, use_teacher_forcing=True)
    _assert_same_dict(expected, actual, atol=1e-5)
    assert actual["wav"].numel() == feats.size(0) * LJSPEECH_HOP
    assert actual["duration"].sum().item() == feats.size(0)


def test_ljspeech_losses_match_espnet(ljspeech_pair):
    """Both turns in eval mode (no dropout; neither model caches the generator's outputs)."""
    espnet, ours = ljspeech_pair
    extra = _missing_layer_drop_draws(espnet, ours)
    batch = _ljspeech_batch(21)
    with torch.no_grad():
        for forward_generator in (True, False):
            _seed(22)
            expected = espnet(**batch, forward_generator=forward_generator)
            _seed(22, extra)
            actual = ours(**batch, forward_generator=forward_generator)
            _assert_same_losses(expected, actual)
