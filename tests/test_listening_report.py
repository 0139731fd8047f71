"""The listening report: built from a small synthetic set; the browser check's failure cases.

The mini run's own report is opened in headless Chromium by tests/test_recipe_end_to_end.py;
here the check is shown to catch what it is for: a file that does not load, console output and
uncaught exceptions. Chromium comes from tools/install_chromium.sh (installs Debian's chromium
when run as root).
"""

import filecmp
import html
import json
import logging
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.full_disk import assert_clear_failure, hidden, run
from helpers.synthetic_speech import SAMPLING_RATE, VOWELS, vowel_sequence

from espnet2_vits_ext.bin.evaluate_tts import main as evaluate_tts
from helpers.browser_check import check_report_in_browser
from espnet2_vits_ext.evaluation.training_curves import (
    load_training_curves,
    parse_train_log,
    read_tensorboard,
)
from espnet2_vits_ext.evaluation.intelligibility import (
    corpus_word_error_rate,
    count_word_errors,
    normalize_transcript,
)
from espnet2_vits_ext.evaluation.utterance_metrics import METRIC_FIELDS, read_metrics_tsv

REPO = Path(__file__).resolve().parents[1]
TEXTS = {
    "LJ001-0001": "Printing, in the only sense with which we are at present concerned.",
    "LJ001-0002": "In being <b>comparatively</b> modern & \"new\".",
    "LJ001-0003": "For although the Chinese took impressions from wood blocks.",
}

# Two epochs of 4 batches, logged every 2 batches, as ESPnet's trainer writes them.
TRAIN_LOG = """\
[host] 2026-01-01 00:00:00,000 (tts:123) INFO: some unrelated line with loss=99
[host] 2026-01-01 00:00:01,000 (trainer:812) INFO: 1epoch:train:1-2batch: iter_time=1.000e-03, generator_loss=60.000, generator_mel_loss=45.000, generator_kl_loss=3.000, discriminator_loss=5.000, optim0_lr0=2.000e-04, train_time=0.500
[host] 2026-01-01 00:00:02,000 (trainer:812) INFO: 1epoch:train:3-4batch: iter_time=1.000e-03, generator_loss=50.000, generator_mel_loss=38.000, generator_kl_loss=2.500, discriminator_loss=4.500, optim0_lr0=2.000e-04, train_time=0.500
[host] 2026-01-01 00:00:03,000 (trainer:338) INFO: 1epoch results: [train] iter_time=1.000e-03, generator_loss=55.000, generator_mel_loss=41.500, discriminator_loss=4.750, time=1 minute, 2.5 seconds, total_count=4, gpu_max_cached_mem_GB=0.000, [valid] generator_loss=52.000, generator_mel_loss=40.000, discriminator_loss=4.600, time=3.1 seconds, total_count=1
[host] 2026-01-01 00:00:04,000 (trainer:812) INFO: 2epoch:train:1-2batch: iter_time=1.000e-03, generator_loss=45.000, generator_mel_loss=33.000, generator_kl_loss=2.000, discriminator_loss=4.000, optim0_lr0=1.999e-04, train_time=0.500
[host] 2026-01-01 00:00:05,000 (trainer:812) INFO: 2epoch:train:3-4batch: iter_time=1.000e-03, generator_loss=40.000, generator_mel_loss=30.000, generator_kl_loss=1.800, discriminator_loss=3.900, optim0_lr0=1.999e-04, train_time=0.500
[host] 2026-01-01 00:00:06,000 (trainer:338) INFO: 2epoch results: [train] generator_loss=42.500, generator_mel_loss=31.500, discriminator_loss=3.950, time=58.2 seconds, total_count=8, [valid] generator_loss=44.000, generator_mel_loss=32.000, discriminator_loss=4.100, time=3.0 seconds, total_count=2
"""


def write_wave(path: Path, wave: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, SAMPLING_RATE, "PCM_16")
    return path


@pytest.fixture(scope="module")
def mini_set(tmp_path_factory) -> dict:
    """Recordings, 'syntheses' (stretched / pitch-shifted / other vowels), text, durations,
    a fake training log; and one evaluate_tts run on them."""
    root = tmp_path_factory.mktemp("mini_set")
    references = {
        "LJ001-0001": vowel_sequence((0.3, 0.3, 0.4)),
        "LJ001-0002": vowel_sequence((0.4, 0.2, 0.3)),
        "LJ001-0003": vowel_sequence((0.2, 0.5, 0.2)),
    }
    syntheses = {
        "LJ001-0001": vowel_sequence((0.36, 0.36, 0.48)),
        "LJ001-0002": vowel_sequence((0.4, 0.2, 0.3), f0_scale=2 ** (1 / 12)),
        "LJ001-0003": vowel_sequence((0.2, 0.5, 0.2), vowels=VOWELS[::-1]),
    }
    data_dir, decode_dir, exp_dir = root / "dump/raw/test", root / "decode/test", root / "exp/tts"
    data_dir.mkdir(parents=True)
    (data_dir / "wav.scp").write_text(
        "".join(f"{k} {write_wave(data_dir / 'wav' / f'{k}.wav', w)}\n" for k, w in references.items())
    )
    (data_dir / "text").write_text("".join(f"{k} {t}\n" for k, t in TEXTS.items()))
    for key, wave in syntheses.items():
        write_wave(decode_dir / "wav" / f"{key}.wav", wave)
    (decode_dir / "durations").mkdir()
    (decode_dir / "durations/durations").write_text(
        "LJ001-0001 0 3 5 2 0 4 1\nLJ001-0002 1 1 6 2\nLJ001-0003 2 0 2 7 3 1\n"
    )
    exp_dir.mkdir(parents=True)
    (exp_dir / "train.log").write_text(TRAIN_LOG)
    output_dir = root / "eval_test"
    args = [
        "--ref_wav_scp", str(data_dir / "wav.scp"), "--gen_wav_dir", str(decode_dir / "wav"),
        "--text", str(data_dir / "text"), "--durations", str(decode_dir / "durations/durations"),
        "--train_log_dir", str(exp_dir), "--output_dir", str(output_dir),
    ]
    evaluate_tts(args)
    return dict(
        root=root, data_dir=data_dir, decode_dir=decode_dir, exp_dir=exp_dir,
        output_dir=output_dir, args=args, references=references, syntheses=syntheses,
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of Chromium, installed by tools/install_chromium.sh if missing (as root)."""
    result = subprocess.run(
        [str(REPO / "tools/install_chromium.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"tools/install_chromium.sh failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def png_size(path: Path) -> tuple:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_metrics_are_written_per_utterance_with_the_expected_ordering(mini_set):
    rows = {r.utt_id: r for r in read_metrics_tsv(mini_set["output_dir"] / "metrics.tsv")}
    assert list(rows) == list(TEXTS)
    assert rows["LJ001-0001"].duration_ratio == pytest.approx(1.2)
    # A semitone up; DTW may pair a few frames across a vowel boundary (the exact case is in
    # test_evaluation_metrics.py).
    assert rows["LJ001-0002"].log_f0_rmse_cents == pytest.approx(100.0, abs=10.0)
    # Stretched copy < pitch-shifted copy < other vowels.
    assert rows["LJ001-0001"].mcd_db < rows["LJ001-0002"].mcd_db < rows["LJ001-0003"].mcd_db
    assert (mini_set["output_dir"] / "metrics.json").is_file()


def test_report_folder_is_self_contained(mini_set):
    report_dir = mini_set["output_dir"] / "report"
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    links = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
    files = [link for link in links if not link.startswith("#")]
    assert len(files) == 3 * 4 + 1  # per utterance 2 players + 2 figures; training curves
    for link in files:
        assert "://" not in link and not link.startswith("/"), link
        assert (report_dir / link).resolve().is_relative_to(report_dir.resolve()), link
        assert (report_dir / link).is_file(), link
    for key in TEXTS:
        assert filecmp.cmp(report_dir / f"audio/synthesized/{key}.wav",
                           mini_set["decode_dir"] / f"wav/{key}.wav", shallow=False)
        assert html.escape(TEXTS[key]) in page
    assert "<b>comparatively</b>" not in page  # text is escaped, not markup
    assert "<link" not in page and "@import" not in page  # no external style sheets
    assert png_size(report_dir / "figures/training_curves.png")[0] > 300


def test_report_can_show_fewer_utterances_than_it_scores(mini_set, tmp_path):
    evaluate_tts(mini_set["args"][:-1] + [str(tmp_path), "--report_utterances", "1"])
    page = (tmp_path / "report/index.html").read_text(encoding="utf-8")
    assert len(read_metrics_tsv(tmp_path / "metrics.tsv")) == len(TEXTS)
    assert page.count("<audio") == 2 and page.count("href='#utt-") == 1
    assert "The first 1 of 3 scored utterances." in page
    assert sorted(p.name for p in (tmp_path / "report/audio/synthesized").iterdir()) == [
        "LJ001-0001.wav"
    ]


def test_browser_check_reports_a_missing_file(mini_set, chromium, monkeypatch, tmp_path):
    monkeypatch.setenv("CHROMIUM_BINARY", chromium)
    broken = tmp_path / "report"
    shutil.copytree(mini_set["output_dir"] / "report", broken)
    (broken / "audio/synthesized/LJ001-0002.wav").unlink()
    check = check_report_in_browser(broken / "index.html")
    assert check.problems == ["audio audio/synthesized/LJ001-0002.wav: error"]
    assert check.status_text.startswith("1 file(s) failed to load")


def test_browser_check_reports_console_output_and_uncaught_errors(chromium, monkeypatch, tmp_path):
    # Chromium's log does not carry the console level, so any console output counts (the
    # report writes none); an exception thrown later, from a timer, is caught as well.
    monkeypatch.setenv("CHROMIUM_BINARY", chromium)
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>probe</p>\n"
        "<script>console.log('probe: console.log'); console.error('probe: console.error');</script>\n"
        "<script>throw new TypeError('probe: uncaught');</script>\n"
        "<script>setTimeout(function () { probeUndefinedFunction(); }, 50);</script>\n"
        "</body></html>\n"
    )
    check = check_report_in_browser(page)
    url = page.resolve().as_uri()
    assert check.console_messages == [
        f'"probe: console.log", source: {url} (2)',
        f'"probe: console.error", source: {url} (2)',
        f'"Uncaught TypeError: probe: uncaught", source: {url} (3)',
        f'"Uncaught ReferenceError: probeUndefinedFunction is not defined", source: {url} (4)',
    ]
    assert check.problems == [f"console: {message}" for message in check.console_messages]


def test_parallel_pieces_merge_to_the_single_run(mini_set, tmp_path):
    lines = (mini_set["data_dir"] / "wav.scp").read_text().splitlines(keepends=True)
    pieces = []
    for job, part in enumerate((lines[:1], lines[1:]), 1):
        scp = tmp_path / f"wav.{job}.scp"
        scp.write_text("".join(part))
        evaluate_tts(["--ref_wav_scp", str(scp), "--gen_wav_dir", str(mini_set["decode_dir"] / "wav"),
                      "--text", str(mini_set["data_dir"] / "text"),
                      "--output_dir", str(tmp_path / str(job)), "--report", "false"])
        assert not (tmp_path / str(job) / "report").exists()
        pieces.append(str(tmp_path / str(job) / "metrics.tsv"))
    evaluate_tts(["--ref_wav_scp", str(mini_set["data_dir"] / "wav.scp"),
                  "--gen_wav_dir", str(mini_set["decode_dir"] / "wav"),
                  "--output_dir", str(tmp_path / "merged"), "--report", "false",
                  "--metrics_from", *pieces[::-1]])
    assert read_metrics_tsv(tmp_path / "merged/metrics.tsv") == read_metrics_tsv(
        mini_set["output_dir"] / "metrics.tsv"
    )


def test_wer_of_syntheses_and_recordings_side_by_side(mini_set):
    rows = read_metrics_tsv(mini_set["output_dir"] / "metrics.tsv")
    for row in rows:
        assert row.text_words == len(normalize_transcript(TEXTS[row.utt_id]).split())
        assert row.synthesized_word_errors == count_word_errors(TEXTS[row.utt_id], row.synthesized_transcript).errors
        assert row.recording_word_errors == count_word_errors(TEXTS[row.utt_id], row.recording_transcript).errors
    document = json.loads((mini_set["output_dir"] / "metrics.json").read_text())
    for side in ("synthesized", "recording"):
        heard = [getattr(row, f"{side}_transcript") for row in rows]
        assert document["summary"][f"{side}_wer"] == pytest.approx(corpus_word_error_rate(list(TEXTS.values()), heard))
    page = (mini_set["output_dir"] / "report/index.html").read_text(encoding="utf-8")
    assert "WER synthesized" in page and "WER recording" in page
    assert page.count("heard in the synthesis:") == page.count("heard in the recording:") == len(TEXTS)


def test_wer_false_writes_the_columns_of_before_and_wer_needs_the_text(mini_set, tmp_path):
    common = ["--ref_wav_scp", str(mini_set["data_dir"] / "wav.scp"), "--report", "false",
              "--gen_wav_dir", str(mini_set["decode_dir"] / "wav")]
    evaluate_tts(common + ["--output_dir", str(tmp_path / "no_wer"), "--wer", "false"])
    header = (tmp_path / "no_wer/metrics.tsv").read_text().splitlines()[0]
    assert header.split("\t") == list(METRIC_FIELDS)
    assert "synthesized_wer" not in json.loads((tmp_path / "no_wer/metrics.json").read_text())["summary"]
    with pytest.raises(ValueError, match="--wer true needs --text"):
        evaluate_tts(common + ["--output_dir", str(tmp_path / "wer")])


def speaker_run(mini_set, tmp_path, utt2spk: dict, caplog) -> tuple:
    """evaluate_tts on mini_set's rows with ``utt2spk``: (metrics.json, report page, log)."""
    (tmp_path / "utt2spk").write_text("".join(f"{key} {speaker}\n" for key, speaker in utt2spk.items()))
    with caplog.at_level(logging.INFO):
        evaluate_tts(mini_set["args"][:-1] + [str(tmp_path / "eval"), "--utt2spk", str(tmp_path / "utt2spk"),
                                              "--metrics_from", str(mini_set["output_dir"] / "metrics.tsv")])
    page = (tmp_path / "eval/report/index.html").read_text(encoding="utf-8")
    return json.loads((tmp_path / "eval/metrics.json").read_text()), page, caplog.text


def test_several_speakers_are_summarised_and_grouped(mini_set, tmp_path, caplog):
    document, page, log = speaker_run(
        mini_set, tmp_path, {"LJ001-0001": "spkB", "LJ001-0002": "spkA", "LJ001-0003": "spkB"}, caplog
    )
    rows = {row.utt_id: row for row in read_metrics_tsv(mini_set["output_dir"] / "metrics.tsv")}
    assert list(document["speakers"]) == ["spkB", "spkA"]  # order of first appearance
    b = document["speakers"]["spkB"]
    assert b["utterances"] == ["LJ001-0001", "LJ001-0003"]
    assert b["summary"]["mcd_db"] == pytest.approx((rows["LJ001-0001"].mcd_db + rows["LJ001-0003"].mcd_db) / 2)
    errors = rows["LJ001-0001"].synthesized_word_errors + rows["LJ001-0003"].synthesized_word_errors
    assert b["summary"]["synthesized_wer"] == pytest.approx(
        errors / (rows["LJ001-0001"].text_words + rows["LJ001-0003"].text_words))
    assert "speaker spkB summary: MCD" in log and "speaker spkA summary: MCD" in log
    # The summary table has a column per speaker; the sections come under one heading each.
    assert "<th>speaker spkB (2)</th>" in page and "<th>speaker spkA (1)</th>" in page
    order = [page.index(mark) for mark in (
        "Speaker spkB: 2 utterance(s)", "id=\"utt-LJ001-0001\"", "id=\"utt-LJ001-0003\"",
        "Speaker spkA: 1 utterance(s)", "id=\"utt-LJ001-0002\"")]
    assert order == sorted(order)


def test_one_speaker_keeps_the_single_speaker_output(mini_set, tmp_path, caplog):
    document, page, log = speaker_run(mini_set, tmp_path, dict.fromkeys(TEXTS, "LJ"), caplog)
    assert "speakers" not in document and "speaker LJ" not in log
    assert "Speaker" not in page and "<h2>Utterances</h2>" in page
    assert (tmp_path / "eval/metrics.tsv").read_text() == (mini_set["output_dir"] / "metrics.tsv").read_text()


def test_missing_synthesis_is_named(mini_set, tmp_path):
    gen_dir = tmp_path / "wav"
    shutil.copytree(mini_set["decode_dir"] / "wav", gen_dir)
    (gen_dir / "LJ001-0003.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 utterance\(s\) .* LJ001-0003"):
        evaluate_tts(["--ref_wav_scp", str(mini_set["data_dir"] / "wav.scp"),
                      "--gen_wav_dir", str(gen_dir), "--output_dir", str(tmp_path / "out")])


def test_train_log_curves_use_global_iterations(tmp_path):
    (tmp_path / "train.log").write_text(TRAIN_LOG)
    curves = parse_train_log(tmp_path / "train.log")
    assert set(curves.train) == {
        "generator_loss", "generator_mel_loss", "generator_kl_loss", "discriminator_loss"
    }
    # Epoch 2's batches continue after epoch 1's total_count=4.
    assert curves.train["generator_loss"] == [(2, 60.0), (4, 50.0), (6, 45.0), (8, 40.0)]
    assert curves.valid["generator_loss"] == [(4, 52.0), (8, 44.0)]
    assert "time" not in curves.valid and "total_count" not in curves.valid


def test_tensorboard_events_are_preferred_to_the_log(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    (tmp_path / "train.log").write_text(TRAIN_LOG)
    for split, values in (("train", [9.0, 7.0, 6.0]), ("valid", [8.0])):
        writer = SummaryWriter(str(tmp_path / "tensorboard" / split))
        for step, value in enumerate(values, 1):
            writer.add_scalar("generator_loss", value, step * 10)
            writer.add_scalar("optim0_lr0", 1e-4, step * 10)  # not a loss: not plotted
        writer.close()
    curves = read_tensorboard(tmp_path / "tensorboard")
    assert curves.train == {"generator_loss": [(10, 9.0), (20, 7.0), (30, 6.0)]}
    assert curves.valid == {"generator_loss": [(10, 8.0)]}
    assert load_training_curves(tmp_path).source == str(tmp_path / "tensorboard")


def test_evaluate_sh_runs_parallel_jobs_and_is_idempotent(mini_set, tmp_path):
    # The layout local/synthesize.sh leaves: wav/ gathered, durations still per job.
    decode_dir = tmp_path / "decode"
    shutil.copytree(mini_set["decode_dir"] / "wav", decode_dir / "wav")
    lines = (mini_set["decode_dir"] / "durations/durations").read_text().splitlines(keepends=True)
    for job, part in enumerate((lines[:2], lines[2:]), 1):
        (decode_dir / f"log/output.{job}/durations").mkdir(parents=True)
        (decode_dir / f"log/output.{job}/durations/durations").write_text("".join(part))
    eval_dir = tmp_path / "eval_test"
    command = [
        str(REPO / "local/evaluate.sh"), "--nj", "2", "--train_log_dir", str(mini_set["exp_dir"]),
        str(mini_set["data_dir"]), str(decode_dir), str(eval_dir),
    ]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "summary: MCD" in first.stdout and "| WER " in first.stdout
    assert read_metrics_tsv(eval_dir / "metrics.tsv") == read_metrics_tsv(
        mini_set["output_dir"] / "metrics.tsv"
    )
    assert (eval_dir / "log/metrics.2.log").is_file()
    assert (eval_dir / "durations").read_text() == "".join(lines)
    assert len(list((eval_dir / "report/figures/alignments").glob("*.png"))) == len(TEXTS)
    assert not list(eval_dir.glob("split*")) and (eval_dir / ".done").is_file()
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert second.returncode == 0 and "skipping" in second.stdout


def test_evaluate_sh_scores_each_speaker_and_can_leave_out_the_wer(mini_set, tmp_path):
    data_dir = tmp_path / "test"
    shutil.copytree(mini_set["data_dir"], data_dir)
    (data_dir / "utt2spk").write_text("LJ001-0001 spkA\nLJ001-0002 spkB\nLJ001-0003 spkA\n")
    eval_dir = tmp_path / "eval_test"
    result = subprocess.run(
        [str(REPO / "local/evaluate.sh"), "--nj", "2", "--wer", "false", "--report", "false",
         str(data_dir), str(mini_set["decode_dir"]), str(eval_dir)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "speaker spkA summary: MCD" in result.stdout and "speaker spkB summary: MCD" in result.stdout
    assert "summary: MCD" in result.stdout and "WER" not in result.stdout
    assert (eval_dir / "metrics.tsv").read_text().splitlines()[0].split("\t") == list(METRIC_FIELDS)
    document = json.loads((eval_dir / "metrics.json").read_text())
    assert {speaker: part["utterances"] for speaker, part in document["speakers"].items()} == {
        "spkA": ["LJ001-0001", "LJ001-0003"], "spkB": ["LJ001-0002"]
    }


def test_evaluate_sh_rejects_unknown_options(tmp_path):
    result = subprocess.run(
        [str(REPO / "local/evaluate.sh"), "--no_such_option", "1", "a", "b", "c"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2 and "unknown option --no_such_option" in result.stderr


def test_evaluate_sh_full_disk_leaves_no_report_and_rerun_finishes(mini_set, tmp_path):
    # Stage 8 under a 20 kB file size limit (a full disk, see test_write_failures): the scores
    # are written, the report's audio copies are not. One line names the folder and the error;
    # no .done, no report, nothing half-built; the same command without the limit finishes.

    eval_dir = tmp_path / "eval_test"
    command = [REPO / "local/evaluate.sh", "--nj", "1", mini_set["data_dir"], mini_set["decode_dir"], eval_dir]
    failed = run(command, cwd=REPO, limit=20_000)
    assert_clear_failure(failed, str(eval_dir), "File too large")
    assert not (eval_dir / ".done").exists() and not (eval_dir / "report").exists()
    assert hidden(eval_dir) == []
    rerun = run(command, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr
    assert (eval_dir / ".done").is_file() and (eval_dir / "report/index.html").is_file()
