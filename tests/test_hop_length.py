"""The hop length, stated three times in a VITS config, must agree (issue 15's hop check).

Each case makes one of the three hops differ from the other two: ``FastVITS`` refuses the
mel loss one at construction, the whole-config check (the task's ``build_model`` and
``local/check_train_config.py``) also the feature extractor's, each with both numbers.
"""

import argparse
import copy
import importlib.util
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.tiny_configs import TINY_MEL_LOSS_PARAMS, tiny_tts_conf
from espnet2_vits_ext.train.task import ResilientGANTTSTask
from espnet2_vits_ext.vits.fast_vits import FastVITS
from espnet2_vits_ext.vits.hop_length import (
    DEFAULT_FEATS_EXTRACT,
    FEATS_EXTRACTORS,
    check_hop_lengths,
    feats_extractor_class,
)

ROOT = Path(__file__).resolve().parents[1]


def _tiny_config() -> dict:
    """A whole training config of the tiny model: every hop is 16."""
    return dict(
        tts="fast_vits",
        tts_conf=tiny_tts_conf(),
        feats_extract="linear_spectrogram",
        feats_extract_conf=dict(n_fft=64, hop_length=16, win_length=None),
    )


def _with(config: dict, which: str, value) -> dict:
    """``config`` with one hop changed: ``feats``, ``mel`` or ``decoder`` (its scales)."""
    config = copy.deepcopy(config)
    if which == "feats":
        config["feats_extract_conf"]["hop_length"] = value
    elif which == "mel":
        config["tts_conf"]["mel_loss_params"]["hop_length"] = value
    else:
        config["tts_conf"]["generator_params"]["decoder_upsample_scales"] = value
    return config


# (hop changed, new value, message): each message names the two numbers that differ.
MISMATCHES = [
    ("feats", 20, "decoder_upsample_scales multiply to 16 but feats_extract_conf.hop_length is 20"),
    ("mel", 20, "decoder_upsample_scales multiply to 16 but mel_loss_params.hop_length is 20"),
    ("decoder", [4, 5], "decoder_upsample_scales multiply to 20 but mel_loss_params.hop_length is 16"),
]


def test_fast_vits_refuses_a_mel_loss_hop_other_than_the_decoders():
    tts_conf = tiny_tts_conf()
    generator_params = tts_conf["generator_params"]
    mel_loss_params = dict(TINY_MEL_LOSS_PARAMS, hop_length=300)
    with pytest.raises(ValueError) as refused:
        FastVITS(idim=12, odim=33, generator_params=generator_params, mel_loss_params=mel_loss_params)
    assert str(refused.value) == "decoder_upsample_scales multiply to 16 but mel_loss_params.hop_length is 300"
    FastVITS(idim=12, odim=33, generator_params=generator_params, mel_loss_params=TINY_MEL_LOSS_PARAMS)


@pytest.mark.parametrize("which, value, message", MISMATCHES)
def test_whole_config_check_names_the_file_and_both_numbers(which, value, message):
    check_hop_lengths(_tiny_config(), "tiny.yaml")
    with pytest.raises(ValueError) as refused:
        check_hop_lengths(_with(_tiny_config(), which, value), "tiny.yaml")
    assert str(refused.value) == f"tiny.yaml: {message}"


def test_the_feature_extractor_table_is_espnets():
    """The check imports the one extractor a config names, not ESPnet's task module: its
    table must be the task's choices, with the same default."""
    from espnet2.tasks.gan_tts import feats_extractor_choices

    assert set(FEATS_EXTRACTORS) == set(feats_extractor_choices.classes)
    for name, cls in feats_extractor_choices.classes.items():
        assert feats_extractor_class(name) is cls
    assert DEFAULT_FEATS_EXTRACT == feats_extractor_choices.default
    with pytest.raises(ValueError, match="feats_extract must be one of"):
        check_hop_lengths(dict(_tiny_config(), feats_extract="mfcc"), "x.yaml")


def test_a_missing_key_means_the_default_of_what_reads_it():
    # ESPnet's extractor and our mel loss both default to 256; the tiny decoder makes 16.
    config = _tiny_config()
    del config["feats_extract_conf"]["hop_length"]
    with pytest.raises(ValueError, match="multiply to 16 but feats_extract_conf.hop_length is 256"):
        check_hop_lengths(config, "tiny.yaml")
    config = _tiny_config()
    del config["tts_conf"]["mel_loss_params"]["hop_length"]
    with pytest.raises(ValueError, match="multiply to 16 but mel_loss_params.hop_length is 256"):
        check_hop_lengths(config, "tiny.yaml")


@pytest.mark.parametrize("name", ["train.yaml", "train_mini.yaml"])
def test_the_recipes_configs_pass(name):
    path = ROOT / "conf" / name
    check_hop_lengths(yaml.safe_load(path.read_text()), str(path))


def test_task_build_model_refuses_before_building():
    config = _with(_tiny_config(), "feats", 20)
    args = argparse.Namespace(**config, config="tiny.yaml")
    with pytest.raises(ValueError, match="^tiny.yaml: decoder_upsample_scales multiply to 16 but feats_extract_conf"):
        ResilientGANTTSTask.build_model(args)


def _stage_helper():
    spec = importlib.util.spec_from_file_location("check_train_config", ROOT / "local" / "check_train_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("which, value, message", MISMATCHES)
def test_stage_helper_prints_one_error_line_and_fails(tmp_path, capsys, which, value, message):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(_tiny_config()))
    bad.write_text(yaml.safe_dump(_with(_tiny_config(), which, value)))
    helper = _stage_helper()
    assert helper.main([str(good)]) == 0
    assert helper.main([str(bad)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"check_train_config.py: error: {bad}: {message}"]


def test_run_sh_checks_the_config_before_stage_4(tmp_path):
    config = yaml.safe_load((ROOT / "conf" / "train_mini.yaml").read_text())
    config["tts_conf"]["mel_loss_params"]["hop_length"] = 300
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["./run.sh", "--corpus", "mini", "--stage", "4", "--stop_stage", "4", "--train_config", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr  # run.sh sends its errors to its log on stdout too
    assert result.returncode == 1
    assert f"{bad}: decoder_upsample_scales multiply to 256 but mel_loss_params.hop_length is 300" in output
    assert "Stage 4" not in output
