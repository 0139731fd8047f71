"""The user's choice of synthesis precision (``inference_precision``: fp32 or bf16).

bf16 runs the decoder on bfloat16 oneDNN kernels. Its output must stay close to fp32's:
the mel-cepstral distortion (MCD) between the two must be a small fraction of what a
different noise sample alone makes (both measured here, on the same model). The option
is reachable from ``tts_conf`` (ESPnet's ``GANTTSTask``/``Text2Speech``; stage 7 through a
config copy made by ``local/set_inference_precision.py``) and the synthesis CLI's ``--precision``. On a CPU without native bfloat16, choosing bf16 is a clear error.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from helpers.tiny_configs import TINY_AUX_CHANNELS, TINY_VOCAB, tiny_tts_conf
from espnet2.bin.pack import pack
from espnet2.bin.tts_inference import Text2Speech
from espnet2.tasks.gan_tts import GANTTSTask
from espnet2_vits_ext.bin.synthesize import main as synthesize_main
from espnet2_vits_ext.evaluation.acoustic_features import AnalysisConfig, extract_world_features
from espnet2_vits_ext.evaluation.mel_cepstral_distortion import frame_distortions_db
from espnet2_vits_ext.vits.fast_vits import FastVITS
from espnet2_vits_ext.acceleration import packed_conv
from espnet2_vits_ext.acceleration.packed_conv import bf16_supported

REPO = Path(__file__).resolve().parents[1]
SAMPLING_RATE = 16000
# bf16 synthesis needs bfloat16 units; elsewhere it is refused (tested below on any CPU).
needs_bf16 = pytest.mark.skipif(not bf16_supported(), reason="CPU has no native bfloat16 (avx512_bf16/amx)")
TOKENS = ["<blank>", "<unk>", "<space>", "ə", "ˈ", "n", "t", "s", "l", "ɪ", "d", "<sos/eos>"]


def mcd_db(reference: np.ndarray, other: np.ndarray) -> float:
    """MCD of two time-aligned waveforms of one length, frame against frame."""
    config = AnalysisConfig(f0_method="dio")
    a = extract_world_features(reference.astype(np.float64), SAMPLING_RATE, config).mel_cepstrum
    b = extract_world_features(other.astype(np.float64), SAMPLING_RATE, config).mel_cepstrum
    return float(np.mean(frame_distortions_db(a, b)))


def synthesize(model: FastVITS, precision: str, seed: int) -> np.ndarray:
    model.set_inference_precision(precision)
    text = torch.arange(2, 12).repeat(2)  # 20 tokens
    durations = torch.full((20,), 50.0)  # 1000 frames x hop 16: one second
    torch.manual_seed(seed)
    with torch.inference_mode():
        return model.inference(text, durations=durations)["wav"].numpy()


def tiny_model(**extra) -> FastVITS:
    torch.manual_seed(0)
    return FastVITS(idim=TINY_VOCAB, odim=TINY_AUX_CHANNELS, **tiny_tts_conf(), **extra).eval()


def test_bf16_is_refused_on_a_cpu_without_native_bfloat16(monkeypatch):
    monkeypatch.setattr(packed_conv, "bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="native bfloat16"):
        tiny_model().set_inference_precision("bf16")
    with pytest.raises(ValueError, match="native bfloat16"):
        tiny_model(inference_precision="bf16")


@needs_bf16
def test_bf16_output_is_close_to_fp32():
    model = tiny_model()
    fp32 = synthesize(model, "fp32", seed=1)
    bf16 = synthesize(model, "bf16", seed=1)
    other_noise = synthesize(model, "fp32", seed=2)
    decoder = model.generator.decoder
    assert set(decoder._packed_plans) == {torch.float32, torch.bfloat16}  # both plans ran
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert not np.array_equal(bf16, fp32)  # bf16 did run in reduced precision
    precision_mcd, noise_mcd = mcd_db(fp32, bf16), mcd_db(fp32, other_noise)
    assert precision_mcd < 0.25 * noise_mcd, (precision_mcd, noise_mcd)
    # The output conv runs in fp32: the waveform is not rounded to bf16's 8-bit mantissa.
    as_bf16 = torch.from_numpy(bf16).to(torch.bfloat16).float().numpy()
    assert np.mean(as_bf16 == bf16) < 0.5
    # back to fp32: the same waveform as before (the fp32 plan is kept, not rebuilt wrongly)
    np.testing.assert_array_equal(synthesize(model, "fp32", seed=1), fp32)


@needs_bf16
def test_bf16_flow_runs_in_bfloat16_and_stays_close():
    """set_inference_precision("bf16") also takes the flow's synthesis (inverse) to bf16."""
    model = tiny_model()
    flow = model.generator.flow
    torch.manual_seed(3)
    with torch.no_grad():  # VITS zero-initialises each coupling's output conv: make it act
        for parameter in flow.parameters():
            parameter.normal_(0.0, 0.3)
    z_p, mask = torch.randn(1, 16, 200), torch.ones(1, 1, 200)
    with torch.inference_mode():
        fp32 = flow(z_p, mask, inverse=True)
        model.set_inference_precision("bf16")
        assert flow.inference_precision == "bf16"
        bf16 = flow(z_p, mask, inverse=True)
        model.set_inference_precision("fp32")
        again = flow(z_p, mask, inverse=True)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().max() < 0.02 * fp32.abs().max()
    assert torch.equal(again, fp32)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="must be one of"):
        tiny_model(inference_precision="fp16")
    with pytest.raises(ValueError, match="must be one of"):
        tiny_model().set_inference_precision("half")


@pytest.fixture(scope="module")
def packed_fast_vits(tmp_path_factory):
    """A tiny ``tts: fast_vits`` model built by ESPnet's GANTTSTask from tts_conf with
    ``inference_precision: bf16`` (or fp32 where bf16 is unsupported), packed as stage 7 reads it."""
    root = tmp_path_factory.mktemp("model")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    args = GANTTSTask.get_parser().parse_args(
        ["--token_list", str(root / "tokens.txt"), "--token_type", "phn", "--cleaner", "tacotron",
         "--g2p", "espeak_ng_english_us_vits", "--tts", "fast_vits", "--feats_extract", "linear_spectrogram",
         "--output_dir", str(root)]
    )
    args.tts_conf = dict(tiny_tts_conf(), inference_precision="bf16" if bf16_supported() else "fp32")
    args.feats_extract_conf = dict(n_fft=64, hop_length=16, win_length=None)
    torch.manual_seed(0)
    model = GANTTSTask.build_model(args)
    torch.save(model.state_dict(), root / "model.pth")
    with open(root / "config.yaml", "w") as f:
        yaml.safe_dump(vars(args), f)
    pack(files=dict(model_file=str(root / "model.pth")), yaml_files=dict(train_config=str(root / "config.yaml")),
         option=[], outpath=str(root / "packed.zip"))
    return root, model


@needs_bf16
def test_precision_from_tts_conf_and_cli(packed_fast_vits, tmp_path):
    root, model = packed_fast_vits
    assert model.tts.generator.decoder.inference_precision == "bf16"

    outputs = {}
    for precision in ("fp32", "bf16"):
        output = tmp_path / f"{precision}.wav"
        code = synthesize_main(["--model_tag", str(root / "packed.zip"), "--text", "The cat sat down.",
                                "--output", str(output), "--noise_scale", "0", "--noise_scale_dur", "0",
                                "--precision", precision])
        assert code == 0
        outputs[precision], rate = sf.read(output, dtype="float32")
        assert rate == SAMPLING_RATE
    # The CLI's choice took effect: same length, close, not identical.
    assert outputs["fp32"].shape == outputs["bf16"].shape
    assert not np.array_equal(outputs["fp32"], outputs["bf16"])
    difference = np.abs(outputs["fp32"] - outputs["bf16"]).max()
    assert difference < 0.1 * np.abs(outputs["fp32"]).max()


def test_stage7_config_copy_sets_the_precision_for_espnet_inference(packed_fast_vits, tmp_path):
    """local/set_inference_precision.py: the copy of config.yaml that stage 7 hands to ESPnet's
    tts_inference builds the model with the chosen precision; the original is unchanged."""
    root, _ = packed_fast_vits
    original = (root / "config.yaml").read_text()
    copy_path = tmp_path / "decode" / "config.yaml"
    script = [sys.executable, str(REPO / "local" / "set_inference_precision.py")]
    subprocess.run([*script, str(root / "config.yaml"), "fp32", str(copy_path)], check=True)
    text2speech = Text2Speech(train_config=copy_path, model_file=root / "model.pth")
    assert text2speech.model.tts.generator.decoder.inference_precision == "fp32"
    assert (root / "config.yaml").read_text() == original
    failed = subprocess.run([*script, str(root / "config.yaml"), "fp16", str(copy_path)],
                            capture_output=True, text=True)
    assert failed.returncode == 2 and "must be one of" in failed.stderr


@needs_bf16
def test_stage7_config_copy_can_choose_bf16(packed_fast_vits, tmp_path):
    root, _ = packed_fast_vits
    copy_path = tmp_path / "decode" / "config.yaml"
    script = [sys.executable, str(REPO / "local" / "set_inference_precision.py")]
    subprocess.run([*script, str(root / "config.yaml"), "bf16", str(copy_path)], check=True)
    text2speech = Text2Speech(train_config=copy_path, model_file=root / "model.pth")
    assert text2speech.model.tts.generator.decoder.inference_precision == "bf16"
