"""Fine-tuning: ``--init_model`` starts a training from a pretrained voice's weights.

A tiny ``fast_vits`` trained for one epoch (module fixture) is the pretrained voice; the
models initialised from it are built by the task as a training run builds them.
"""

import logging
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from espnet2_vits_ext.train.init_model import TOKEN_EMBEDDING, InitModelError, init_model
from helpers.tiny_training import TOKENS, train_args, write_tiny_config, write_tiny_corpus

REPO = Path(__file__).resolve().parents[1]
SPEAKER_TABLE = "tts.generator.global_emb.weight"
# Two of the source's letters removed, two symbols added, the order changed.
NEW_TOKENS = ["<blank>", "<unk>", "h", "g", "x", "a", "b", "y", "e", "f", "<sos/eos>"]


def _train(args):
    from espnet2_vits_ext.bin.gan_tts_train import main

    main(args)


def _build(folder: Path, tokens=TOKENS, tts="fast_vits", seed=1, **tts_conf_updates):
    """A freshly built model of the tiny config (as training builds it) and its token list."""
    from espnet2.tasks.gan_tts import GANTTSTask

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n")
    config = write_tiny_config(folder / "train.yaml", tts=tts)
    args = GANTTSTask.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(folder / "tokens.txt"),
         "--output_dir", str(folder / "exp")])
    if tts_conf_updates:
        args.tts_conf["generator_params"].update(tts_conf_updates)
    torch.manual_seed(seed)
    return GANTTSTask.build_model(args), args.token_list


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"), utterances=2)


@pytest.fixture(scope="module")
def source(corpus, tmp_path_factory):
    """The pretrained voice: exp dir of one epoch (config.yaml, latest.pth, checkpoint.pth)."""
    config = write_tiny_config(tmp_path_factory.mktemp("conf") / "train.yaml", max_epoch=1)
    output_dir = tmp_path_factory.mktemp("source") / "exp"
    _train(train_args(corpus, config, output_dir, ["--oom_scan_batches", "0"]))
    return output_dir


def _recipe_dirs(corpus, folder: Path):
    """Dump and stats dirs of the tiny corpus as local/train.sh reads them."""
    for split, prefix in (("train", ""), ("valid", "valid_")):
        (folder / "dump" / split).mkdir(parents=True)
        (folder / "stats" / split).mkdir(parents=True)
        for name, target in (("text", "text"), ("wav_scp", "wav.scp")):
            (folder / "dump" / split / target).symlink_to(corpus[prefix + name])
        for name, target in (("text_shape", "text_shape.char"), ("speech_shape", "speech_shape")):
            (folder / "stats" / split / target).symlink_to(corpus[prefix + name])
    (folder / "stats" / ".done").write_text("stats\n")
    return [str(folder / "dump" / "train"), str(folder / "dump" / "valid"), str(folder / "stats")]


def _state(path: Path):
    loaded = torch.load(path, weights_only=False)
    return loaded.get("model", loaded)


def test_a_fine_tuning_run_starts_from_the_source_weights_and_a_resumed_one_does_not_reload(
        source, corpus, tmp_path, caplog):
    trained = _state(source / "latest.pth")
    fresh, _ = _build(tmp_path / "fresh", seed=0)  # the seed training runs with
    config = write_tiny_config(tmp_path / "train.yaml", max_epoch=1)
    output_dir = tmp_path / "exp"
    # the recipe's stage 6; --max_epoch 0: no step, checkpoint.pth is the state training starts from
    trained_by_recipe = subprocess.run(
        ["bash", "local/train.sh", "--train_config", str(config), "--token_list", str(corpus["tokens"]),
         "--token_type", "char", "--init_model", str(source / "latest.pth"),
         "--train_args", "--max_epoch 0 --oom_scan_batches 0", *_recipe_dirs(corpus, tmp_path), str(output_dir)],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert trained_by_recipe.returncode == 0, trained_by_recipe.stderr[-3000:]
    train_log = (output_dir / "train.log").read_text()
    assert f"--init_model {source / 'latest.pth'} (checkpoint): loaded" in train_log
    start = _state(output_dir / "checkpoint.pth")
    generator = [name for name in trained if name.startswith("tts.generator.")]
    for name in generator + ["tts.discriminator.msd.discriminators.0.layers.0.0.weight_v"]:
        torch.testing.assert_close(start[name], trained[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(start[TOKEN_EMBEDDING], fresh.state_dict()[TOKEN_EMBEDDING])

    options = ["--oom_scan_batches", "0", "--init_model", str(source / "latest.pth")]
    with caplog.at_level(logging.INFO):  # --resume true (train_args) with a checkpoint
        _train(train_args(corpus, config, output_dir, options + ["--max_epoch", "0"]))
    assert "not applied: resuming instead" in caplog.text
    assert "(checkpoint): loaded" not in caplog.text


def test_a_different_token_list_is_remapped_by_symbol_from_a_packed_zip(source, tmp_path, caplog):
    from espnet2.main_funcs.pack_funcs import pack

    packed = tmp_path / "voice.zip"
    pack(files=dict(model_file=source / "latest.pth"),
         yaml_files=dict(train_config=source / "config.yaml"), outpath=packed)
    trained = _state(source / "latest.pth")[TOKEN_EMBEDDING]
    model, tokens = _build(tmp_path / "remapped", tokens=NEW_TOKENS)
    fresh = model.state_dict()[TOKEN_EMBEDDING].clone()
    with caplog.at_level(logging.INFO):
        report = init_model(model, packed, tokens)
    embedding = model.state_dict()[TOKEN_EMBEDDING]
    for symbol in ("h", "a", "<blank>", "<sos/eos>"):
        torch.testing.assert_close(embedding[NEW_TOKENS.index(symbol)],
                                   trained[TOKENS.index(symbol)], rtol=0, atol=0, msg=symbol)
    for symbol in ("x", "y"):
        row = NEW_TOKENS.index(symbol)
        torch.testing.assert_close(embedding[row], fresh[row], rtol=0, atol=0, msg=symbol)
    assert report.new_tokens == ["x", "y"] and report.dropped_tokens == ["c", "d"]
    assert report.remapped["h"] == TOKENS.index("h")
    assert "new symbols initialised fresh: x, y" in caplog.text
    assert f"token list of the source: {packed}:" in caplog.text


def test_the_parts_an_imported_piper_voice_holds_untrained_stay_fresh(source, tmp_path):
    """A zip whose config has import_piper's ``piper_import`` entry (the import itself,
    of a real voice, is test_piper_import's; a 300 MB zip is too slow to make here)."""
    from espnet2.main_funcs.pack_funcs import pack
    from espnet2_vits_ext.piper.weight_mapping import SYNTHESIS_ONLY_PREFIXES

    config = yaml.safe_load((source / "config.yaml").read_text())
    config["piper_import"] = dict(untrained=list(SYNTHESIS_ONLY_PREFIXES) + ["discriminator."])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    pack(files=dict(model_file=source / "latest.pth"),
         yaml_files=dict(train_config=tmp_path / "config.yaml"), outpath=tmp_path / "voice.zip")
    model, tokens = _build(tmp_path / "model")
    fresh = {name: value.clone() for name, value in model.state_dict().items()}
    report = init_model(model, tmp_path / "voice.zip", tokens)
    untrained = set(report.untrained_in_source)
    assert any(name.startswith("tts.generator.posterior_encoder.") for name in untrained)
    assert {name for name in fresh if name.startswith("tts.discriminator.")} <= untrained
    for name in untrained:
        torch.testing.assert_close(model.state_dict()[name], fresh[name], rtol=0, atol=0)
    assert "tts.generator.decoder.input_conv.bias" in report.loaded


def test_a_new_speaker_table_and_its_conditioning_layers_are_listed_as_initialised(
        source, tmp_path, caplog):
    model, tokens = _build(tmp_path / "speakers", spks=3, global_channels=8)
    fresh = {name: value.clone() for name, value in model.state_dict().items()}
    with caplog.at_level(logging.INFO):
        report = init_model(model, source / "checkpoint.pth", tokens)
    trained = _state(source / "checkpoint.pth")
    assert sorted(report.not_in_source) == sorted(set(fresh) - set(trained))
    # the table and the speaker input of each conditioned box (global_conv, conv1x1_glo)
    assert SPEAKER_TABLE in report.not_in_source and len(report.not_in_source) > 10
    assert all("glo" in name for name in report.not_in_source)
    for name in report.not_in_source:
        torch.testing.assert_close(model.state_dict()[name], fresh[name], rtol=0, atol=0)
    assert "initialised fresh, not in the source: " in caplog.text and SPEAKER_TABLE in caplog.text
    for name in report.loaded:
        torch.testing.assert_close(model.state_dict()[name], trained[name], rtol=0, atol=0)
    # (the source's config.yaml is beside checkpoint.pth: same token list, nothing remapped)
    assert report.remapped == {} and report.shape_differs == []


def test_an_espnet_vits_checkpoint_initialises_fast_vits(tmp_path):
    espnet, tokens = _build(tmp_path / "espnet", tts="vits", seed=3)
    assert type(espnet.tts).__module__.startswith("espnet2.gan_tts.vits")
    torch.save(espnet.state_dict(), tmp_path / "espnet" / "model.pth")
    torch.save(espnet.tts.state_dict(), tmp_path / "espnet" / "vits_only.pth")  # generator.*
    for path in (tmp_path / "espnet" / "model.pth", tmp_path / "espnet" / "vits_only.pth"):
        ours, _ = _build(tmp_path / "ours")
        report = init_model(ours, path, tokens)
        assert report.fresh == [] and report.unused == []
        for name, value in espnet.state_dict().items():
            if not name.startswith("tts.mel_loss."):
                torch.testing.assert_close(ours.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_what_is_no_model_is_refused_with_one_line_naming_it(source, corpus, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("meta.yaml", yaml.safe_dump(dict(files={}, yaml_files={})))
    unrelated = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), unrelated)
    model, tokens = _build(tmp_path / "model")
    expected = {tmp_path: "no such file", text: "not a model checkpoint",
                empty_zip: "a zip without a model file", unrelated: "nothing in it fits this model"}
    for path, reason in expected.items():
        with pytest.raises(InitModelError) as error:
            init_model(model, path, tokens)
        message = str(error.value)
        assert message.startswith(f"--init_model {path}: {reason}") and "\n" not in message

    config = write_tiny_config(tmp_path / "train.yaml", max_epoch=1)
    for path, reason in ((tmp_path / "missing.pth", "no such file"), (text, "not a model checkpoint")):
        with pytest.raises(SystemExit) as stop:
            _train(train_args(corpus, config, tmp_path / "exp", ["--init_model", str(path)]))
        assert stop.value.code == 2
    assert not (tmp_path / "exp" / "checkpoints").exists() or not any((tmp_path / "exp" / "checkpoints").iterdir())
