"""``python -m espnet2_vits_ext.bin.synthesize`` on tiny packed FastVITS voices (``tts: fast_vits``).

The models are built from the tiny configurations of ``conftest.py`` by ESPnet's ``GANTTSTask``,
saved and packed with ``espnet2.bin.pack`` as a trained one would be (tests/helpers/packed_models.py);
the CLI loads them with ``Text2Speech.from_pretrained``. References are ESPnet's ``Text2Speech``
on the unpacked files, or the CLI's own whole-piece output for ``--stream``.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.tiny_configs import tiny_conditioned_tts_conf, tiny_tts_conf
from helpers.packed_models import pack_tiny_voice
from espnet2.bin.tts_inference import Text2Speech
from espnet2_vits_ext.bin.synthesize import main
from espnet2_vits_ext.text.sentence_split import split_sentences

LONG_TEXT = "The cat sat down. Then it slept for a while! Did it dream? Nobody knows, Mr. Smith said."
# Streaming's joined chunks equal the whole decode to ~1e-6 (tests/test_streaming.py): after
# rounding to 16 bits a sample on a rounding boundary may move by one step, no more.
STREAM_PCM_TOLERANCE = 1.01 / 32768


@pytest.fixture(scope="module")
def packed_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    pack_tiny_voice(root, tiny_tts_conf())
    return root


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_speakers")
    pack_tiny_voice(root, tiny_conditioned_tts_conf(spks=2))
    return root


def synthesize_to(model_root: Path, output: Path, *options: str, seed: int = 3) -> int:
    """Run the CLI on LONG_TEXT (three pieces) with the noise on, seeded."""
    torch.manual_seed(seed)
    return main(["--model_tag", str(model_root / "packed.zip"), "--text", LONG_TEXT, "--output", str(output),
                 "--max_chars", "40", "--pause", "0.1", *options])


def test_long_text_is_synthesized_in_pieces_joined_by_pauses(packed_model, tmp_path):
    output = tmp_path / "out.wav"
    code = main(["--model_tag", str(packed_model / "packed.zip"), "--text", LONG_TEXT, "--output", str(output),
                 "--noise_scale", "0", "--noise_scale_dur", "0", "--max_chars", "40", "--pause", "0.1"])
    assert code == 0
    wave, rate = sf.read(output, dtype="float32")
    assert rate == 16000

    # With the noise off the model is deterministic: the output is each piece said on its own,
    # in order, with 0.1 s of silence between them.
    pieces = split_sentences(LONG_TEXT, 40)
    assert len(pieces) == 3
    tts = Text2Speech(train_config=packed_model / "config.yaml", model_file=packed_model / "model.pth",
                      noise_scale=0.0, noise_scale_dur=0.0)
    pause = np.zeros(1600, dtype=np.float32)
    parts = [tts(piece)["wav"].numpy() for piece in pieces]
    expected = np.concatenate([parts[0], pause, parts[1], pause, parts[2]])
    assert wave.shape == expected.shape
    np.testing.assert_allclose(wave, np.clip(expected, -1, 1), atol=1.5 / 32768)


@pytest.mark.parametrize("text, message", [("", "the text is empty"), ("  \n ", "the text is empty"),
                                           ("Hello {world}", "cannot pronounce"), ("🙂", "empty after cleaning")])
def test_unsayable_text_is_a_clear_error(packed_model, tmp_path, capsys, text, message):
    output = tmp_path / "out.wav"
    code = main(["--model_tag", str(packed_model / "packed.zip"), "--text", text, "--output", str(output)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    code = main(["--model_tag", str(tmp_path / "nope.zip"), "--text", "Hi.", "--output", str(tmp_path / "o.wav")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


def test_streamed_file_equals_the_whole_synthesis(packed_model, tmp_path):
    # Noise on, same seed: streaming makes the same random draws as whole-piece synthesis.
    assert synthesize_to(packed_model, tmp_path / "whole.wav") == 0
    assert synthesize_to(packed_model, tmp_path / "streamed.wav", "--stream") == 0
    whole, rate = sf.read(tmp_path / "whole.wav", dtype="float32")
    streamed, streamed_rate = sf.read(tmp_path / "streamed.wav", dtype="float32")
    assert streamed_rate == rate == 16000
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() <= STREAM_PCM_TOLERANCE
    assert np.abs(whole).max() > 100 / 32768  # not silence
    # The file grew under a temporary name, renamed when complete: nothing else is left.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["streamed.wav", "whole.wav"]


def test_stream_to_standard_output_is_raw_pcm_of_the_same_audio(packed_model, tmp_path, capsysbinary):
    assert synthesize_to(packed_model, tmp_path / "whole.wav") == 0
    assert synthesize_to(packed_model, Path("-"), "--stream") == 0
    raw = np.frombuffer(capsysbinary.readouterr().out, dtype="<i2")
    whole, _ = sf.read(tmp_path / "whole.wav", dtype="int16")
    assert raw.shape == whole.shape
    assert np.abs(raw.astype(int) - whole).max() <= 1


def test_speaker_picks_the_voice_s_speaker(two_speakers, tmp_path):
    text = "Did it dream?"
    outputs = {}
    for speaker in ("0", "1"):
        outputs[speaker] = tmp_path / f"speaker{speaker}.wav"
        code = main(["--model_tag", str(two_speakers / "packed.zip"), "--text", text, "--speaker", speaker,
                     "--output", str(outputs[speaker]), "--noise_scale", "0", "--noise_scale_dur", "0"])
        assert code == 0
    tts = Text2Speech(train_config=two_speakers / "config.yaml", model_file=two_speakers / "model.pth",
                      noise_scale=0.0, noise_scale_dur=0.0)
    expected = tts(text, sids=np.array([1]))["wav"].numpy()
    one, _ = sf.read(outputs["1"], dtype="float32")
    zero, _ = sf.read(outputs["0"], dtype="float32")
    assert one.shape == expected.shape
    np.testing.assert_allclose(one, np.clip(expected, -1, 1), atol=1.5 / 32768)
    assert np.abs(one - zero[:len(one)]).max() > 1e-3  # the id reached the model

    streamed = tmp_path / "streamed1.wav"
    assert main(["--model_tag", str(two_speakers / "packed.zip"), "--text", text, "--speaker", "1", "--stream",
                 "--output", str(streamed), "--noise_scale", "0", "--noise_scale_dur", "0"]) == 0
    assert np.abs(sf.read(streamed, dtype="float32")[0] - one).max() <= STREAM_PCM_TOLERANCE


@pytest.mark.parametrize("model, speaker, message", [
    ("two_speakers", ["--speaker", "2"], "--speaker 2 is out of range: this voice has 2 speakers, ids 0-1"),
    ("two_speakers", ["--speaker", "-1"], "--speaker -1 is out of range: this voice has 2 speakers, ids 0-1"),
    ("two_speakers", [], "this voice has 2 speakers: choose one with --speaker N (0-1)"),
    ("packed_model", ["--speaker", "0"], "--speaker 0: this voice has one speaker"),
])
def test_wrong_speaker_is_one_error_line(request, tmp_path, capsys, model, speaker, message):
    root = request.getfixturevalue(model)
    output = tmp_path / "out.wav"
    code = main(["--model_tag", str(root / "packed.zip"), "--text", "Hi.", "--output", str(output), *speaker])
    assert code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert list(tmp_path.iterdir()) == []
