"""The multi-speaker recipe egs2/vctk/tts1: VCTK's download, index and per-speaker split, speaker ids.

A small corpus in VCTK 0.92's layout (``txt/<spk>/<id>.txt``, ``wav48_silence_trimmed/<spk>/<id>_mic1.flac``
at 48 kHz) is built under tmp_path: zipped and served by a local HTTP server for the download (cut
part-way and resumed, a wrong checksum refused), and indexed, split and dumped by the recipe's own
stages. The multi-voice mini corpus gets the same checks. The slow end-to-end test runs the whole
recipe from egs2/vctk/tts1 on that mini corpus, with every output directory under tmp_path, and
makes the packed voice speak each speaker by id (about 90 s on 2 idle AVX512-BF16 EPYC cores, a
rerun included: it has nothing left to do).
"""

import importlib.util
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from helpers.file_server import Server, sha

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs2" / "vctk" / "tts1"


def load_script(name: str):
    """A script of local/ as a module (they are commands, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "local" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


download_vctk = load_script("download_vctk")
prepare_vctk = load_script("prepare_vctk")
prepare_data = load_script("prepare_data")
make_speaker_ids = load_script("make_speaker_ids")
make_mini_corpus = load_script("make_mini_corpus")

SENTENCES = [
    "Please call Stella.", "Ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas.", "Five thick slabs of blue cheese.", "We also need a small plastic snake.",
    "She can scoop these things into three red bags.", "The rainbow is a division of white light.",
    "When the sunlight strikes raindrops in the air, they act as a prism.", "People look, but no one ever finds it.",
    "Throughout the centuries people have explained the rainbow in various ways.",
]  # fmt: skip


def make_vctk_tree(root: Path, utterances: dict[str, int], seconds: float = 1.5) -> Path:
    """A VCTK 0.92 look-alike: ``{speaker: number of utterances}``, noise at 48 kHz as FLAC (both mics).

    Like the real corpus, p315 has audio but no transcripts, and p226's last utterance has no mic1 audio.
    """
    rng = np.random.default_rng(0)
    for speaker, count in [*utterances.items(), ("p315", 3)]:
        (root / "txt" / speaker).mkdir(parents=True, exist_ok=True)
        (root / "wav48_silence_trimmed" / speaker).mkdir(parents=True, exist_ok=True)
        for number in range(1, count + 1):
            utt = f"{speaker}_{number:03d}"
            if speaker != "p315":
                (root / "txt" / speaker / f"{utt}.txt").write_text(SENTENCES[number % len(SENTENCES)] + "\n")
            for mic in ("mic1", "mic2"):
                if speaker == "p226" and number == count and mic == "mic1":
                    continue
                noise = 0.1 * rng.standard_normal(int(48000 * seconds))
                sf.write(root / "wav48_silence_trimmed" / speaker / f"{utt}_{mic}.flac", noise, 48000)
    return root


def zipped(tree: Path) -> bytes:
    """The tree as VCTK's archive holds it: the corpus folders at the zip's root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vctk_zip(tmp_path_factory) -> bytes:
    return zipped(make_vctk_tree(tmp_path_factory.mktemp("vctk"), {"p225": 9, "p226": 9}, seconds=0.3))


# ----- (a) download -----


def test_download_cut_part_way_resumes_and_extracts(tmp_path, vctk_zip):
    with Server(vctk_zip, name="VCTK-Corpus-0.92.zip") as server:
        server.drop_first_after = len(vctk_zip) // 3
        status = download_vctk.main(["--url", server.url, "--sha256", sha(vctk_zip), str(tmp_path)])
    assert status == 0
    assert server.requests[1] == ("/VCTK-Corpus-0.92.zip", f"bytes={len(vctk_zip) // 3}-")
    assert (tmp_path / "VCTK-Corpus-0.92.zip").read_bytes() == vctk_zip
    corpus = tmp_path / "VCTK-Corpus-0.92"
    assert (corpus / "txt" / "p225" / "p225_001.txt").read_text() == SENTENCES[1] + "\n"
    samples, rate = sf.read(corpus / "wav48_silence_trimmed" / "p226" / "p226_002_mic2.flac")
    assert rate == 48000 and len(samples) == 14400
    assert (corpus / ".done").read_text().strip() == sha(vctk_zip)


def test_wrong_checksum_is_refused_and_nothing_kept(tmp_path, vctk_zip, caplog):
    wrong = "f" * 64
    with Server(vctk_zip, name="VCTK-Corpus-0.92.zip") as server:
        assert download_vctk.main(["--url", server.url, "--sha256", wrong, str(tmp_path)]) == 1
    assert "checksum mismatch" in caplog.text and wrong in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_archive_without_the_corpus_folders_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("txt/p225/p225_001.txt", "Please call Stella.\n")  # no wav48_silence_trimmed/
    with Server(buffer.getvalue(), name="VCTK-Corpus-0.92.zip") as server:
        assert download_vctk.main(["--url", server.url, "--sha256", sha(buffer.getvalue()), str(tmp_path)]) == 1
    assert not (tmp_path / "VCTK-Corpus-0.92").exists()


# ----- (b) index, split, speaker ids -----


def read_table(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_index_is_split_per_speaker_and_speaker_ids_follow_the_training_set(tmp_path):
    tree = make_vctk_tree(tmp_path / "VCTK-Corpus-0.92", {"p225": 9, "p226": 10, "p227": 8})
    index = tmp_path / "vctk_index"
    assert prepare_vctk.main([str(tree), str(index)]) == 0
    assert prepare_data.main([str(index), str(index), str(tmp_path / "data")]) == 0
    sets = {name: read_table(tmp_path / "data" / name / "utt2spk") for name in ("train", "val", "test")}
    # p315 (no text) and p226's last utterance (no mic1 audio) are not in the corpus.
    assert {spk for table in sets.values() for spk in table.values()} == {"p225", "p226", "p227"}
    assert "p226_010" not in {u for table in sets.values() for u in table}
    for speaker, count in (("p225", 9), ("p226", 9), ("p227", 8)):
        ids = [f"{speaker}_{n:03d}" for n in range(1, count + 1)]
        assert [u for u in sets["test"] if u.startswith(speaker)] == ids[-5:]
        assert [u for u in sets["val"] if u.startswith(speaker)] == ids[-7:-5]
        assert [u for u in sets["train"] if u.startswith(speaker)] == ids[:-7]
    wav = read_table(tmp_path / "data" / "test" / "wav.scp")["p227_008"]
    assert wav == str((tree / "wav48_silence_trimmed" / "p227" / "p227_008_mic1.flac").resolve())

    dirs = [tmp_path / "data" / name for name in ("train", "val", "test")]
    assert make_speaker_ids.main([*map(str, dirs), "--train_config", str(RECIPE / "conf" / "train.yaml")]) == 0
    # ESPnet's table: <unk> is 0, the training set's speakers from 1 in byte order.
    assert (dirs[0] / "spk2sid").read_text() == "<unk> 0\np225 1\np226 2\np227 3\n"
    for d, table in zip(dirs, sets.values()):
        utt2sid = (d / "utt2sid").read_text().splitlines()
        assert [line.split()[0] for line in utt2sid] == list(table)  # utt2spk's order
        assert all(int(sid) == {"p225": 1, "p226": 2, "p227": 3}[table[utt]] for utt, sid in map(str.split, utt2sid))


def write_set(directory: Path, utt2spk: dict) -> Path:
    directory.mkdir(parents=True)
    (directory / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utt2spk.items()))
    return directory


def test_a_speaker_missing_from_the_training_set_is_one_error_line_and_nothing_written(tmp_path, capsys):
    train = write_set(tmp_path / "train", {"a_1": "a", "b_1": "b"})
    test = write_set(tmp_path / "test", {"a_2": "a", "c_1": "c"})
    assert make_speaker_ids.main([str(train), str(test)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{test / 'utt2spk'}:2: speaker c of c_1 is not in {train / 'spk2sid'}" in error
    assert not (train / "spk2sid").exists() and not (train / "utt2sid").exists() and not (test / "utt2sid").exists()


def test_a_speaker_table_too_small_for_the_speakers_is_refused(tmp_path, capsys):
    train = write_set(tmp_path / "train", {f"s{k}_1": f"s{k}" for k in range(8)})
    config = RECIPE / "conf" / "train_mini.yaml"  # spks 8: ids 0..7, one short of <unk> + 8 speakers
    assert make_speaker_ids.main([str(train), "--train_config", str(config)]) == 1
    error = capsys.readouterr().err.strip()
    assert str(config) in error and "spks is 8" in error and "at least 9" in error
    assert not (train / "spk2sid").exists()


def test_multi_voice_mini_corpus_has_one_speaker_per_voice_and_a_per_speaker_split(tmp_path):
    corpus = tmp_path / "mini"
    voices = ["en-us", "en-us+f3", "en-us+m3"]
    assert make_mini_corpus.main(["--num_utts", "90", "--voices", ",".join(voices), str(corpus)]) == 0
    assert (corpus / "speakers.txt").read_text() == "MINI01 en-us\nMINI02 en-us+f3\nMINI03 en-us+m3\n"
    assert prepare_data.main([str(corpus), str(corpus), str(tmp_path / "data")]) == 0
    sets = {name: read_table(tmp_path / "data" / name / "utt2spk") for name in ("train", "val", "test")}
    for speaker in ("MINI01", "MINI02", "MINI03"):
        # 30 sentences each: their 10th, 20th, 30th are test, their 7th and 22nd val.
        assert [u for u, s in sets["test"].items() if s == speaker] == [f"{speaker}_{n:04d}" for n in (10, 20, 30)]
        assert [u for u, s in sets["val"].items() if s == speaker] == [f"{speaker}_{n:04d}" for n in (7, 22)]
        assert sum(s == speaker for s in sets["train"].values()) == 25
    dirs = [tmp_path / "data" / name for name in ("train", "val", "test")]
    assert make_speaker_ids.main([*map(str, dirs), "--train_config", str(RECIPE / "conf" / "train_mini.yaml")]) == 0
    assert (dirs[0] / "spk2sid").read_text() == "<unk> 0\nMINI01 1\nMINI02 2\nMINI03 3\n"
    # The voices differ: speaker 1 and speaker 2 say the same first sentence differently.
    first, second = (sf.read(corpus / "wavs" / f"MINI0{k}_0001.wav")[0] for k in (1, 2))
    assert first.shape != second.shape or not np.allclose(first, second)


# ----- run.sh with VCTK -----


def recipe_run(options: list, cwd: Path = RECIPE, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["./run.sh", *options], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def output_dirs(tmp_path: Path) -> list:
    """The recipe's output options, all under tmp_path (the checkout stays clean)."""
    return [option for name in ("download_dir", "datadir", "dumpdir", "expdir") for option in (f"--{name}", str(tmp_path / name))]


def test_vctk_stages_1_to_4_index_resample_and_give_speaker_ids(tmp_path):
    tree = make_vctk_tree(tmp_path / "VCTK-Corpus-0.92", {"p225": 8, "p226": 9})
    result = recipe_run(["--vctk_root", str(tree), "--stage", "1", "--stop_stage", "4", "--nj", "2", *output_dirs(tmp_path)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "corpus vctk" in result.stdout and "speaker ids true" in result.stdout
    assert (tmp_path / "download_dir" / "vctk_index" / "utt2spk").is_file()
    dump = tmp_path / "dumpdir" / "raw"
    # Stage 3: 48 kHz FLAC became 22,050 Hz WAV (conf/train.yaml's sampling_rate).
    first = (dump / "test" / "wav.scp").read_text().split()[1]
    info = sf.info(first if Path(first).is_absolute() else RECIPE / first)
    assert info.samplerate == 22050 and info.format == "WAV"
    assert (dump / "train" / "spk2sid").read_text() == "<unk> 0\np225 1\np226 2\n"
    assert read_table(dump / "test" / "utt2sid") == {f"p225_{n:03d}": "1" for n in range(4, 9)} | {
        f"p226_{n:03d}": "2" for n in range(4, 9)
    }


def test_vctk_with_a_single_speaker_config_is_refused(tmp_path):
    result = recipe_run(["--corpus", "vctk", "--vctk_root", str(tmp_path), "--stage", "1", "--stop_stage", "1",
                         "--train_config", str(ROOT / "conf" / "train.yaml"), *output_dirs(tmp_path)])  # fmt: skip
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "has several speakers" in error and "spks -1" in error and "egs2/vctk/tts1/conf/train.yaml" in error


def test_recipe_directory_links_to_the_root_and_has_its_own_configs():
    for name in ("run.sh", "local", "utils", "tools", "path.sh", "cmd.sh"):
        entry = RECIPE / name
        assert entry.is_symlink() and not os.readlink(entry).startswith("/") and entry.resolve() == ROOT / name
    full = yaml.safe_load((RECIPE / "conf" / "train.yaml").read_text())
    generator = full["tts_conf"]["generator_params"]
    assert full["tts"] == "fast_vits" and full["tts_conf"]["sampling_rate"] == 22050
    assert (generator["spks"], generator["global_channels"]) == (128, 256)
    mini = yaml.safe_load((RECIPE / "conf" / "train_mini.yaml").read_text())
    voices = (RECIPE / "recipe.conf").read_text().split("mini_voices=")[1].split()[0].split(",")
    assert mini["tts_conf"]["generator_params"]["spks"] >= len(voices) + 1  # <unk> and one id per voice


# ----- (c) the whole recipe -----

TRAIN_ARGS = "--max_epoch 1 --num_iters_per_epoch 3"
TAG = "train_mini_max_epoch1_num_iters_per_epoch3"


@pytest.mark.slow
def test_mini_recipe_speaks_every_speaker(tmp_path):
    options = ["--corpus", "mini", "--nj", "2", "--inference_nj", "2", "--train_args", TRAIN_ARGS, *output_dirs(tmp_path)]
    result = recipe_run(["--stage", "1", "--stop_stage", "7", *options], timeout=1200)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "Successfully finished." in result.stdout
    dump, exp = tmp_path / "dumpdir" / "raw", tmp_path / "expdir" / f"tts_{TAG}"
    spk2sid = dict(line.split() for line in (dump / "train" / "spk2sid").read_text().splitlines())
    assert spk2sid == {"<unk>": "0", "MINI01": "1", "MINI02": "2", "MINI03": "3", "MINI04": "4"}
    # Stats, training and synthesis read utt2sid as sids (their logs start with the command run).
    for log, sets in (
        (tmp_path / "expdir" / f"tts_stats_{TAG}" / "logdir" / "stats.1.log", ("train", "val")),
        (exp / "train.log", ("train", "val")),
        (exp / "decode_latest" / "test" / "log" / "tts_inference.1.log", ("test",)),
    ):
        command = log.read_text().splitlines()[0]
        assert all(f"{dump / name}/utt2sid,sids,text_int" in command for name in sets), (log, command)
    wavs = (exp / "decode_latest" / "test" / "wav" / "wav.scp").read_text().splitlines()
    assert len(wavs) == len((dump / "test" / "utt2sid").read_text().splitlines()) == 24
    packed = exp / "packed" / f"tts_{TAG}_latest.zip"
    assert any(name.endswith("spk2sid") for name in zipfile.ZipFile(packed).namelist())
    voice = json.loads(packed.with_suffix(".onnx.json").read_text())
    assert voice["speaker_id_map"] == {speaker: int(sid) for speaker, sid in spk2sid.items()}
    # Rewriting the same speaker ids in stage 4 of a rerun leaves stages 5-7 with nothing to do.
    model_time, zip_time = (exp / "latest.pth").stat().st_mtime, packed.stat().st_mtime
    again = recipe_run(["--stage", "1", "--stop_stage", "7", *options])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "training finished with these inputs" in again.stdout and f"{packed} is up to date" in again.stdout
    assert (exp / "latest.pth").stat().st_mtime == model_time and packed.stat().st_mtime == zip_time

    from espnet2.bin.tts_inference import Text2Speech

    tts = Text2Speech.from_pretrained(model_tag=str(packed), device="cpu", noise_scale=0.0, noise_scale_dur=0.0)
    spoken = {sid: tts("Every speaker says this.", sids=np.array([sid]))["wav"].numpy() for sid in range(1, 5)}
    assert all(wav.ndim == 1 and wav.size > 1000 and np.isfinite(wav).all() for wav in spoken.values())
    # Noise off: the same id twice is the same waveform, so what differs between ids is the speaker.
    np.testing.assert_array_equal(tts("Every speaker says this.", sids=np.array([1]))["wav"].numpy(), spoken[1])
    for a in range(1, 5):
        for b in range(a + 1, 5):
            assert spoken[a].shape != spoken[b].shape or not np.allclose(spoken[a], spoken[b], atol=1e-4), (a, b)
