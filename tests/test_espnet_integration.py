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

from conftest import tiny_tts_conf
from espnet2_vits_ext.vits.fast_vits import FastVITS

SAMPLING_RATE = 16000
LETTERS = "abcdef"
TOKENS = ["<blank>", "<unk>", *LETTERS, "<sos/eos>"]


def _write_corpus(directory: Path) -> dict:
    """Four sine clips of 0.1-0.2 s with 3-6 letter texts, in ESPnet's dump format."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    lines = {"wav.scp": [], "text": [], "speech_shape": [], "text_shape": []}
    for index in range(4):
        utt_id = f"utt{index}"
        samples = int(rng.integers(100, 200)) * 16
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * np.arange(samples) / SAMPLING_RATE)
        soundfile.write(directory / f"{utt_id}.wav", wave.astype(np.float32), SAMPLING_RATE)
        text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 7))))
        lines["wav.scp"].append(f"{utt_id} {directory / f'{utt_id}.wav'}")
        lines["text"].append(f"{utt_id} {text}")
        lines["speech_shape"].append(f"{utt_id} {samples}")
        lines["text_shape"].append(f"{utt_id} {len(text)}")
    lines["tokens.txt"] = TOKENS
    for name, content in lines.items():
        (directory / name).write_text("\n".join(content) + "\n")
    return {name: directory / name for name in lines}


def _write_config(path: Path) -> Path:
    optimizer = dict(lr=2.0e-4, betas=[0.8, 0.99], eps=1.0e-9, weight_decay=0.0)
    config = dict(
        tts="fast_vits",
        tts_conf=tiny_tts_conf(),
        feats_extract="linear_spectrogram",
        feats_extract_conf=dict(n_fft=64, hop_length=16, win_length=None),
        normalize=None,
        optim="adamw",
        optim_conf=optimizer,
        optim2="adamw",
        optim2_conf=optimizer,
        scheduler="exponentiallr",
        scheduler_conf=dict(gamma=0.999),
        scheduler2="exponentiallr",
        scheduler2_conf=dict(gamma=0.999),
        generator_first=False,
        batch_type="unsorted",
        batch_size=2,
        max_epoch=1,
        num_workers=0,
        seed=0,
        use_tensorboard=False,
        use_matplotlib=False,
        num_att_plot=0,
        best_model_criterion=[["train", "total_count", "max"]],
        keep_nbest_models=1,
        token_type="char",
        cleaner=None,
        g2p=None,
    )
    path.write_text(yaml.safe_dump(config))
    return path


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

    corpus = _write_corpus(tmp_path / "data")
    config = _write_config(tmp_path / "train.yaml")
    args = GANTTSTask.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(corpus["tokens.txt"]),
         "--output_dir", str(tmp_path / "exp")]
    )
    torch.manual_seed(0)
    model = GANTTSTask.build_model(args)
    assert isinstance(model.tts, FastVITS) and isinstance(model.tts, VITS)
    optimizers = GANTTSTask.build_optimizers(args, model)
    before = {name: value.clone() for name, value in model.tts.state_dict().items()}

    texts = [line.split()[1] for line in corpus["text"].read_text().splitlines()][:2]
    waves = [soundfile.read(tmp_path / "data" / f"utt{i}.wav")[0] for i in range(2)]
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
    corpus = _write_corpus(tmp_path / "data")
    config = _write_config(tmp_path / "train.yaml")
    output_dir = tmp_path / "exp"
    train_args = [
        "-m", "espnet2.bin.gan_tts_train",
        "--config", str(config),
        "--output_dir", str(output_dir),
        "--token_list", str(corpus["tokens.txt"]),
        "--ngpu", "0",
        "--num_iters_per_epoch", "2",
    ]
    for split in ("train", "valid"):
        train_args += [
            f"--{split}_data_path_and_name_and_type", f"{corpus['text']},text,text",
            f"--{split}_data_path_and_name_and_type", f"{corpus['wav.scp']},speech,sound",
            f"--{split}_shape_file", str(corpus["text_shape"]),
            f"--{split}_shape_file", str(corpus["speech_shape"]),
        ]
    log = _run(train_args, cwd=tmp_path)
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
