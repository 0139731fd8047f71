"""One end-to-end run of the recipe on the built-in mini corpus: ./run.sh --corpus mini, stages 1-8.

The run uses conf/train_mini.yaml (tts: fast_vits) shortened to a few iterations with
--train_args, and writes everything under a temporary directory. It checks each stage's
outputs, that a second run skips the finished work, that stage 8's listening report of the run
plays in Debian's headless chromium (every player loads its file, no console output; the
screenshot stays at <pytest tmp_path>/listening_report.png), that the packed zip loads
offline in a fresh process with Text2Speech.from_pretrained and synthesizes speech, and that
Piper's runtime speaks the Piper voice stage 7 exports beside it as our torch synthesis does.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers.browser_check import check_report_in_browser
from helpers.piper_runtime import PCM_TOLERANCE, espnet_phonemes, piper_speaks, text2speech_of_zip, torch_speaks
from espnet2_vits_ext.evaluation.utterance_metrics import read_metrics_tsv

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ARGS = "--max_epoch 1 --num_iters_per_epoch 3"
TAG = "train_mini_max_epoch1_num_iters_per_epoch3"


REPORTED = 6  # utterances in the listening report of stage 8


@pytest.mark.slow
def test_mini_recipe_stages_1_to_8(tmp_path, monkeypatch):
    dirs = {name: tmp_path / name for name in ("downloads", "data", "dump", "exp")}
    options = [
        "--corpus", "mini",
        "--nj", "2",
        "--inference_nj", "2",
        "--train_args", TRAIN_ARGS,
        "--download_dir", str(dirs["downloads"]),
        "--datadir", str(dirs["data"]),
        "--dumpdir", str(dirs["dump"]),
        "--expdir", str(dirs["exp"]),
    ]  # fmt: skip
    command = ["./run.sh", "--stage", "1", "--stop_stage", "7", *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    for stage in range(1, 8):
        assert f"Stage {stage}:" in result.stdout
    assert "Successfully finished. [elapsed=" in result.stdout

    # Stage 1-2: the mini corpus and its split.
    corpus = dirs["downloads"] / "mini"
    assert len((corpus / "metadata.csv").read_text().splitlines()) == 240
    counts = {s: len((dirs["data"] / s / "wav.scp").read_text().splitlines()) for s in ("train", "val", "test")}
    assert counts == {"train": 200, "val": 16, "test": 24}
    # Stages 3-4: dumps and the token list.
    token_list = dirs["dump"] / "token_list" / "espeak_ng_english_us_vits" / "tokens.txt"
    tokens = token_list.read_text().split()
    assert tokens[0] == "<blank>" and tokens[-1] == "<sos/eos>" and len(tokens) > 20
    # Stage 5: shape files and statistics.
    stats = dirs["exp"] / f"tts_stats_{TAG}"
    assert len((stats / "train" / "speech_shape").read_text().splitlines()) == 200
    assert (stats / "train" / "feats_stats.npz").stat().st_size > 0
    # Stage 6: a trained model, with its exact command recorded.
    exp = dirs["exp"] / f"tts_{TAG}"
    assert (exp / "latest.pth").exists() and (exp / ".done").exists()
    assert "fast_vits" in (exp / "config.yaml").read_text()
    assert "espnet2.bin.launch" in (exp / "command.sh").read_text()
    # Stage 7: one waveform per test utterance, and the packed zip.
    wav_scp = (exp / "decode_latest" / "test" / "wav" / "wav.scp").read_text().splitlines()
    assert len(wav_scp) == 24 and all(Path(line.split()[1]).stat().st_size > 44 for line in wav_scp)
    packed = exp / "packed" / f"tts_{TAG}_latest.zip"
    assert packed.is_file()
    # ... and its Piper voice beside it: Piper's runtime speaks it as our torch synthesis does
    # (noise off, the same phonemes; raw samples, as the 3-iteration model's peak is small).
    voice = packed.with_suffix(".onnx")
    assert voice.is_file() and voice.with_suffix(".onnx.json").is_file()
    with tempfile.TemporaryDirectory() as unpacked:
        tts = text2speech_of_zip(packed, unpacked, noise_scale=0.0, noise_scale_dur=0.0)
        phonemes = espnet_phonemes(tts, "The voice of the mini recipe, in Piper.")
        expected = torch_speaks(tts, phonemes, normalize=False)
    spoken = piper_speaks(voice, tmp_path / "piper.wav", phonemes, normalize=False)
    assert spoken.shape == expected.shape
    np.testing.assert_allclose(spoken, expected, atol=PCM_TOLERANCE, rtol=0)

    # A second run has nothing left to do.
    model_time = (exp / "latest.pth").stat().st_mtime
    zip_time = packed.stat().st_mtime
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "skipping" in again.stdout and "training finished with these inputs" in again.stdout
    assert (exp / "latest.pth").stat().st_mtime == model_time and packed.stat().st_mtime == zip_time
    assert f"{voice} is up to date: skipping" in again.stdout

    # Stage 8, as a user runs it after stage 7: metrics and the listening report of the test set.
    # dio (about 20 times faster than the default harvest, which the metric tests use) and 6
    # utterances in the report keep this short; every utterance is still scored.
    stage_8 = ["./run.sh", "--stage", "8", "--stop_stage", "8", *options,
               "--evaluation_args", f"--f0_method dio --report_utterances {REPORTED}"]  # fmt: skip
    evaluated = subprocess.run(stage_8, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    assert "Stage 8:" in evaluated.stdout and "summary: MCD" in evaluated.stdout
    test_keys = [line.split()[0] for line in (dirs["dump"] / "raw/test/wav.scp").read_text().splitlines()]
    eval_dir = exp / "eval_test"
    assert [row.utt_id for row in read_metrics_tsv(eval_dir / "metrics.tsv")] == test_keys
    # The report opened in a real browser: each utterance's recording and synthesis play, with
    # the length of the file it points to, and the page writes nothing to the console.
    chromium = subprocess.run(["tools/install_chromium.sh"], cwd=ROOT, capture_output=True, text=True)
    assert chromium.returncode == 0, f"tools/install_chromium.sh failed:\n{chromium.stderr}"
    monkeypatch.setenv("CHROMIUM_BINARY", chromium.stdout.strip().splitlines()[-1])
    report = eval_dir / "report" / "index.html"
    screenshot = tmp_path / "listening_report.png"
    check = check_report_in_browser(report, screenshot_path=screenshot)
    assert check.problems == [], f"{report} in chromium (screenshot {screenshot}): {check.problems}"
    audio = [m for m in check.media if m.tag == "audio"]
    played_files = [
        report.parent / f"audio/{kind}/{key}.wav"
        for key in test_keys[:REPORTED]
        for kind in ("reference", "synthesized")
    ]
    assert [m.src for m in audio] == [str(p.relative_to(report.parent)) for p in played_files]
    assert [m.duration_s for m in audio] == pytest.approx([sf.info(p).duration for p in played_files], abs=0.01)
    assert check.status_text == f"{len(audio)} of {len(audio)} audio files ready to play."
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no PNG at {screenshot}"
    assert screenshot.stat().st_size > 50_000, f"{screenshot} looks blank"

    # The three lines a user writes, in a fresh process, offline.
    script = textwrap.dedent(
        f"""
        from espnet2.bin.tts_inference import Text2Speech
        tts = Text2Speech.from_pretrained(model_tag={str(packed)!r}, device="cpu")
        wav = tts("Dr. Smith paid $5 on Jan. 3, 1901.")["wav"]
        import torch
        assert wav.dim() == 1 and wav.numel() > 1000 and torch.isfinite(wav).all(), wav.shape
        assert type(tts.model.tts).__name__ == "FastVITS", type(tts.model.tts)
        print("samples", wav.numel(), "fs", tts.fs)
        """
    )
    try:
        loaded = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert "fs 22050" in loaded.stdout
    finally:
        # espnet_model_zoo unpacked the zip into its cache (in the environment): leave nothing behind.
        from espnet_model_zoo.downloader import ModelDownloader, str_to_hash

        shutil.rmtree(ModelDownloader().cachedir / str_to_hash(packed.absolute()), ignore_errors=True)
