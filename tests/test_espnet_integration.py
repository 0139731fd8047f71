"""``tts: fast_vits`` through ESPnet's own entry points: task, trainer, Text2Speech.

The registration hook (``espnet2_vits_ext.pth``) must make a fresh Python process know
``fast_vits``; the training and synthesis runs below are such processes.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml

from espnet2_vits_ext.vits.fast_vits import FastVITS
from helpers.tiny_training import TOKENS, train_args, write_tiny_config, write_tiny_corpus

def _run(args, cwd: Path) -> str:
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def test_task_builds_fast_vits_and_a_few_steps_change_the_weights(tmp_path):
    from espnet2.gan_tts.vits import VITS
    from espnet2.tasks.gan_tts import GANTTSTask

    corpus = write_tiny_corpus(tmp_path / "data", utterances=4)
    config = write_tiny_config(tmp_path / "train.yaml")
    args = GANTTSTask.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(corpus["tokens"]),
         "--output_dir", str(tmp_path / "exp")]
    )
    torch.manual_seed(0)
    model = GANTTSTask.build_model(args)
    assert isinstance(model.tts, FastVITS) and isinstance(model.tts, VITS)
    optimizers = GANTTSTask.build_optimizers(args, model)
    before = {name: value.clone() for name, value in model.tts.state_dict().items()}

    texts = [line.split()[1] for line in corpus["text"].read_text().splitlines()][:2]
    wav_paths = [line.split()[1] for line in corpus["wav_scp"].read_text().splitlines()][:2]
    waves = [soundfile.read(path)[0] for path in wav_paths]
    text = torch.zeros(2, max(map(len, texts)), dtype=torch.long)
    speech = torch.zeros(2, max(map(len, waves)))
    for row, (letters, wave) in enumerate(zip(texts, waves)):
        text[row, : len(letters)] = torch.tensor([TOKENS.index(c) for c in letters])
        speech[row, : len(wave)] = torch.from_numpy(wave)
    batch = dict(
        text=text,
        text_lengths=torch.tensor([len(t) for t in texts]),
        speech=speech,
        speech_lengths=torch.tensor([len(w) for w in waves]),
    )
    model.train()
    for _ in range(2):
        for forward_generator in (False, True):
            result = model(**batch, forward_generator=forward_generator)
            assert torch.isfinite(result["loss"])
            optimizer = optimizers[result["optim_idx"]]
            optimizer.zero_grad()
            result["loss"].backward()
            optimizer.step()
    for prefix in ("generator.", "discriminator."):
        changed = [
            name for name, value in model.tts.state_dict().items()
            if name.startswith(prefix) and not torch.equal(value, before[name])
        ]
        assert changed, f"no {prefix[:-1]} weight changed"


def test_espnet_trainer_and_text2speech_in_fresh_processes(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data", utterances=4)
    config = write_tiny_config(tmp_path / "train.yaml", max_epoch=1)
    output_dir = tmp_path / "exp"
    # ESPnet's own entry point (not ours): the start-up hook alone must make it know fast_vits.
    espnet_train = ["-m", "espnet2.bin.gan_tts_train"] + train_args(
        corpus, config, output_dir, ["--num_iters_per_epoch", "2"]
    )
    log = _run(espnet_train, cwd=tmp_path)
    assert "generator_loss=" in log and "discriminator_loss=" in log, log[-3000:]
    for key in ("generator_loss", "discriminator_loss"):
        values = [
            float(part.split("=")[1].rstrip(","))
            for part in log.split()
            if part.startswith(f"{key}=")
        ]
        assert values and all(np.isfinite(values)), (key, values)
    train_config = output_dir / "config.yaml"
    assert yaml.safe_load(train_config.read_text())["tts"] == "fast_vits"

    synthesis = f"""
import torch
from espnet2.bin.tts_inference import Text2Speech
from espnet2.gan_tts.vits import VITS
from espnet2_vits_ext.vits.fast_vits import FastVITS
tts = Text2Speech(train_config={str(train_config)!r}, model_file={str(output_dir / '1epoch.pth')!r},
                  noise_scale=0.3, noise_scale_dur=0.4, speed_control_alpha=1.5)
assert isinstance(tts.tts, FastVITS) and isinstance(tts.tts, VITS)
assert tts.decode_conf["noise_scale"] == 0.3 and tts.decode_conf["noise_scale_dur"] == 0.4
assert tts.decode_conf["alpha"] == 1.5
output = tts("abcab")
assert output["wav"].dim() == 1 and torch.isfinite(output["wav"]).all()
assert output["wav"].numel() == int(output["duration"].sum()) * 16, output["duration"]
print("synthesised", output["wav"].numel())
"""
    assert "synthesised" in _run(["-c", synthesis], cwd=tmp_path)
