"""``python -m espnet2_vits_ext.bin.synthesize`` on a tiny packed FastVITS (``tts: fast_vits``).

The model is built from the tiny configuration of ``conftest.py`` by ESPnet's ``GANTTSTask``,
saved and packed with ``espnet2.bin.pack`` as a trained one would be; the CLI loads it with
``Text2Speech.from_pretrained``.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import tiny_tts_conf
from espnet2.bin.pack import pack
from espnet2.bin.tts_inference import Text2Speech
from espnet2.tasks.gan_tts import GANTTSTask
from espnet2_vits_ext.bin.synthesize import main
from espnet2_vits_ext.text.sentence_split import split_sentences

# 12 tokens = the tiny model's vocabulary; other phonemes are read as <unk>.
TOKENS = ["<blank>", "<unk>", "<space>", "ə", "ˈ", "n", "t", "s", "l", "ɪ", "d", "<sos/eos>"]
LONG_TEXT = "The cat sat down. Then it slept for a while! Did it dream? Nobody knows, Mr. Smith said."


@pytest.fixture(scope="module")
def packed_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    args = GANTTSTask.get_parser().parse_args(
        ["--token_list", str(root / "tokens.txt"), "--token_type", "phn", "--cleaner", "tacotron",
         "--g2p", "espeak_ng_english_us_vits", "--tts", "fast_vits", "--feats_extract", "linear_spectrogram",
         "--output_dir", str(root)]
    )
    args.tts_conf = tiny_tts_conf()
    args.feats_extract_conf = dict(n_fft=64, hop_length=16, win_length=None)
    torch.manual_seed(0)
    model = GANTTSTask.build_model(args)
    torch.save(model.state_dict(), root / "model.pth")
    with open(root / "config.yaml", "w") as f:
        yaml.safe_dump(vars(args), f)
    pack(files=dict(model_file=str(root / "model.pth")), yaml_files=dict(train_config=str(root / "config.yaml")),
         option=[], outpath=str(root / "packed.zip"))
    return root


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
