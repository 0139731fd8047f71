"""run.sh's options, Kaldi style: utils/parse_options.sh semantics and run.sh's help and checks."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "run.sh"


def run(args, cwd=ROOT, **kwargs):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


def run_sh_defaults() -> dict:
    """``{option: default}`` of the variable block at the top of run.sh (before help_message)."""
    text = RUN_SH.read_text()
    block = text.split("set -euo pipefail", 1)[1].split("help_message=", 1)[0]
    defaults = {}
    for line in block.splitlines():
        match = re.match(r"^([a-z_0-9]+)=(\S*)\s*(#.*)?$", line)
        if match:
            name, value, comment = match.groups()
            assert comment, f"run.sh: option {name} has no trailing comment"
            defaults[name] = value
    return defaults


def test_every_option_has_a_default_comment_and_help_line():
    defaults = run_sh_defaults()
    for expected in ("stage", "stop_stage", "nj", "ngpu", "corpus", "train_config", "ljspeech_root",
                     "ljspeech_url", "ljspeech_sha256", "g2p", "resume", "inference_nj"):  # fmt: skip
        assert expected in defaults
    result = run(["./run.sh", "--help"])
    assert result.returncode == 0
    for name, value in defaults.items():
        lines = [line for line in result.stdout.splitlines() if re.match(rf"\s+--{name}\b", line)]
        assert len(lines) == 1, f"--{name} is not listed once in --help"
        if value:
            assert value in lines[0], f"--help does not show the default of --{name}: {lines[0]}"


def test_unknown_option_is_an_error():
    result = run(["./run.sh", "--stop_stag", "3"])
    assert result.returncode == 2
    assert "unknown option --stop_stag" in result.stderr


def test_boolean_option_takes_only_true_or_false():
    result = run(["./run.sh", "--resume", "yes"])
    assert result.returncode == 2
    assert "--resume takes true or false, not 'yes'" in result.stderr


def test_positional_arguments_are_rejected():
    result = run(["./run.sh", "--stage", "2", "extra"])
    assert result.returncode == 2
    assert "unexpected argument(s): extra" in result.stderr


def test_option_without_value_is_an_error():
    result = run(["./run.sh", "--stage"])
    assert result.returncode == 2
    assert "option --stage needs a value" in result.stderr


def test_fs_must_agree_with_the_config(tmp_path):
    result = run(["./run.sh", "--fs", "16000", "--expdir", str(tmp_path / "exp")])
    assert result.returncode == 1
    assert "--fs 16000 disagrees with tts_conf.sampling_rate 22050 of conf/train.yaml" in result.stderr
    assert not (tmp_path / "exp").exists()


def test_non_integer_stage_is_an_error(tmp_path):
    result = run(["./run.sh", "--stage", "two", "--expdir", str(tmp_path / "exp")])
    assert result.returncode == 1 and "--stage takes a non-negative integer" in result.stderr


def test_no_stage_selected_runs_nothing(tmp_path):
    dirs = [f"--{d}" for d in ("download_dir", "datadir", "dumpdir", "expdir")]
    args = ["./run.sh", "--stage", "8", "--stop_stage", "7"]
    for flag in dirs:
        args += [flag, str(tmp_path / flag.strip("-"))]
    result = run(args)
    assert result.returncode == 0, result.stderr
    assert "Stage" not in result.stdout and "Successfully finished. [elapsed=" in result.stdout
    # The run's own log goes under exp/logs; nothing else is written.
    assert [p.name for p in (tmp_path / "expdir").iterdir()] == ["logs"]
    assert not (tmp_path / "datadir").exists()


def test_must_run_from_the_repository_root(tmp_path):
    result = run([str(RUN_SH), "--help"], cwd=tmp_path)
    assert result.returncode == 2 and "run me from the repository root" in result.stderr


PARSER_SCRIPT = """set -euo pipefail
stage=1      # first stage
use_gpu=false  # a boolean
name=abc     # a string
help_message="Usage: test.sh [options]
  --stage N     (default ${stage})
  --use_gpu B   (default ${use_gpu})
  --name S      (default ${name})"
. "${PARSER}"
printf '%s|%s|%s|%s\\n' "${stage}" "${use_gpu}" "${name}" "$*"
"""


@pytest.fixture
def parser_script(tmp_path):
    script = tmp_path / "test.sh"
    script.write_text(PARSER_SCRIPT)
    env = {**os.environ, "PARSER": str(ROOT / "utils" / "parse_options.sh")}
    return lambda *args: run(["bash", str(script), *args], env=env)


def test_parser_forms_and_positional_remainder(parser_script):
    result = parser_script("--stage", "3", "--use-gpu=true", "--name", "a b", "rest", "--not-parsed")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3|true|a b|rest --not-parsed\n"
    assert parser_script("--name=x=y", "--", "--stage").stdout == "1|false|x=y|--stage\n"


def test_parser_refuses_variables_the_help_does_not_list(parser_script):
    result = parser_script("--PATH", "/nowhere")
    assert result.returncode == 2 and "unknown option --PATH" in result.stderr


def test_parser_help(parser_script):
    result = parser_script("--help")
    assert result.returncode == 0 and "--use_gpu B   (default false)" in result.stdout
    assert parser_script("-h").stdout == result.stdout


def test_multi_node_training_needs_the_slurm_backend(tmp_path):
    env = {**os.environ, "cmd_backend": "local"}
    result = run(["./run.sh", "--num_nodes", "2", "--expdir", str(tmp_path / "exp")], env=env)
    assert result.returncode == 1
    assert "--num_nodes 2 needs the slurm job backend (cmd_backend=slurm ./run.sh ...; see cmd.sh)" in result.stderr
    assert not (tmp_path / "exp").exists()  # refused before any stage ran
    zero = run(["./run.sh", "--num_nodes", "0", "--expdir", str(tmp_path / "exp")], env=env)
    assert zero.returncode == 1 and "--num_nodes must be at least 1" in zero.stderr


def test_allow_upsample_reaches_stage_3(tmp_path):
    import numpy as np
    import soundfile as sf

    # One clip per set, recorded at 16 kHz: below the config's 22,050 Hz, so stage 3 excludes it
    # unless --allow_upsample true.
    for dset in ("train", "val", "test"):
        data = tmp_path / "data" / dset
        data.mkdir(parents=True)
        wav = tmp_path / f"{dset}.wav"
        sf.write(wav, 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)
        utt = f"LJ_{dset}"
        (data / "wav.scp").write_text(f"{utt} {wav}\n")
        (data / "text").write_text(f"{utt} A clip of the {dset} set.\n")
        (data / "utt2spk").write_text(f"{utt} LJ\n")
        (data / "spk2utt").write_text(f"LJ {utt}\n")
    args = ["./run.sh", "--stage", "3", "--stop_stage", "3", "--nj", "1"]
    for name in ("datadir", "dumpdir", "expdir"):
        args += [f"--{name}", str(tmp_path / name.replace("dir", ""))]
    excluded = run(args)
    assert excluded.returncode == 1 and "low-rate: 1" in excluded.stdout + excluded.stderr
    kept = run([*args, "--allow_upsample", "true"])
    assert kept.returncode == 0, kept.stdout + kept.stderr
    for dset in ("train", "val", "test"):
        utt, path = (tmp_path / "dump" / "raw" / dset / "wav.scp").read_text().split()
        assert utt == f"LJ_{dset}" and sf.info(path).samplerate == 22050
    assert "--allow_upsample true" in (tmp_path / "dump" / "raw" / "command_stage3.sh").read_text()


def test_init_model_is_checked_and_names_its_own_experiment(tmp_path):
    exp = tmp_path / "exp"
    missing = run(["./run.sh", "--corpus", "mini", "--init_model", str(tmp_path / "none.zip"), "--expdir", str(exp)])
    assert missing.returncode == 1 and f"--init_model: no such file '{tmp_path / 'none.zip'}'" in missing.stderr
    voice = tmp_path / "en_US-joe-medium.zip"
    voice.write_bytes(b"")
    # Stage 6 alone: it reaches local/train.sh with the fine-tuning experiment's own tag (so a
    # voice trained from scratch under the plain tag is neither resumed nor skipped).
    result = run(["./run.sh", "--corpus", "mini", "--init_model", str(voice), "--stage", "6", "--stop_stage", "6",
                  "--expdir", str(exp), "--dumpdir", str(tmp_path / "dump")])
    assert result.returncode != 0  # nothing to train on: stages 1-5 did not run
    assert f"-> {exp}/tts_train_mini_init_en_US-joe-medium\n" in result.stdout
    checkpoint = tmp_path / "tts_train" / "latest.pth"  # named after its experiment too
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    result = run(["./run.sh", "--corpus", "mini", "--init_model", str(checkpoint), "--stage", "6", "--stop_stage", "6",
                  "--expdir", str(exp), "--dumpdir", str(tmp_path / "dump")])
    assert f"-> {exp}/tts_train_mini_init_tts_train_latest\n" in result.stdout
