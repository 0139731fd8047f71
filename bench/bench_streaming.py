"""Streaming synthesis on the trained voice ``en_US-joe-medium``: first audio and the seams.

The voice imported into ``fast_vits`` (bench_piper_voice's ``--voice_zip``), the 299-character
sentence of bench_piper_voice in Piper's phoneme ids, noise off. Per precision (fp32, and bf16
on a CPU with native bfloat16):

- first audio: seconds from the call of
  :func:`espnet2_vits_ext.inference.streaming.synthesize_streaming` to its first chunk
  (median of ``--repeats`` after ``--warmup`` untimed calls), and the whole synthesis;
- the seams: the joined chunks against the whole-sentence waveform of the same precision, the
  largest difference anywhere and within 64 samples of a seam, beside the speech's RMS and the
  largest step between neighbouring samples of the whole waveform (a click is a step far
  above that).

Prints one JSON object. Usage: python bench/bench_streaming.py [--threads 2] [--repeats 5] [--warmup 2]
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

from bench_piper_voice import DEFAULT_ZIP, LONG_SENTENCE, imported_voice, phoneme_ids
from common import precisions_here
from espnet2_vits_ext.inference.streaming import synthesize_streaming

SEAM_SAMPLES = 64


def streamed(model, text: torch.Tensor) -> tuple:
    """Chunks (list of (T_chunk,) arrays) and seconds to the first one."""
    start = time.perf_counter()
    chunks, first_s = [], None
    for chunk in synthesize_streaming(model, text, noise_scale=0.0, noise_scale_dur=0.0):
        first_s = time.perf_counter() - start if first_s is None else first_s
        chunks.append(chunk.float().numpy())
    return chunks, first_s


def seam_figures(chunks: list, whole: np.ndarray) -> dict:
    joined = np.concatenate(chunks)
    difference = np.abs(joined - whole)
    seams = np.cumsum([len(chunk) for chunk in chunks])[:-1]
    near = np.concatenate([difference[max(0, s - SEAM_SAMPLES):s + SEAM_SAMPLES] for s in seams]) if len(seams) else [0.0]
    return dict(chunks=len(chunks), same_length=len(joined) == len(whole), max_abs_diff=float(difference.max()),
                max_abs_diff_near_seams=float(np.max(near)), speech_rms=float(np.sqrt(np.mean(whole ** 2))),
                largest_neighbour_step=float(np.abs(np.diff(whole)).max()))


def measure(model, text: torch.Tensor, precision: str, repeats: int, warmup: int) -> dict:
    model.set_inference_precision(precision)
    for _ in range(warmup):
        streamed(model, text)
    firsts, totals = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        chunks, first_s = streamed(model, text)
        totals.append(time.perf_counter() - start)
        firsts.append(first_s)
    with torch.inference_mode():
        whole = model.inference(text, noise_scale=0.0, noise_scale_dur=0.0)["wav"].float().numpy()
    return dict(first_audio_s=statistics.median(firsts), whole_streamed_s=statistics.median(totals),
                audio_s=len(whole) / 22050, **seam_figures(chunks, whole))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = imported_voice(DEFAULT_ZIP)
    text = torch.tensor(phoneme_ids(), dtype=torch.long)
    result = dict(threads=args.threads, characters=len(LONG_SENTENCE), phoneme_ids=len(text))
    for precision in precisions_here():
        result[precision] = measure(model, text, precision, args.repeats, args.warmup)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
