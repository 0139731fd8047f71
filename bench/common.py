"""Shared pieces of the benchmarks: the two models with the same weights, timing, memory.

Every benchmark compares our ``FastVITS`` with ESPnet's ``espnet2.gan_tts.vits.VITS`` built
from the same configuration (the LJSpeech recipe's ``conf/train.yaml``), ours loading
ESPnet's state_dict strictly, on the same inputs. Timings of the two run in one process,
repeats interleaved (A, B, A, B, ...), so that load from other processes hits both alike;
peak memory is measured in a fresh process per model (:func:`run_isolated`).
"""

import ctypes
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import yaml

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = REPO / "conf" / "train.yaml"
VOCAB_SIZE = 78  # about the size of the espeak-ng phoneme token list of LJSpeech
LINEAR_BINS = 513  # n_fft 1024 // 2 + 1


def precisions_here() -> tuple:
    """The synthesis precisions this CPU runs natively: ``("fp32", "bf16")`` with AVX512-BF16
    or AMX, else ``("fp32",)`` (bf16 emulated on AVX2 is slower than fp32: no figure to report)."""
    from espnet2_vits_ext.acceleration.packed_conv import bf16_supported

    return ("fp32", "bf16") if bf16_supported() else ("fp32",)


def load_tts_conf(config_path: Path = TRAIN_CONFIG) -> dict:
    """``tts_conf`` of a recipe config (``tts: fast_vits`` takes ESPnet VITS's keys)."""
    with open(config_path) as stream:
        return yaml.safe_load(stream)["tts_conf"]


def build_models(tts_conf: dict, which: str = "both"):
    """ESPnet's VITS (seeded) and ours with its weights, in eval mode.

    Args:
        tts_conf: Model arguments.
        which: ``"both"`` returns ``(espnet, ours)``; ``"espnet"`` or ``"ours"`` returns
            that model alone (the other is freed before returning).
    """
    import torch
    from espnet2.gan_tts.vits import VITS

    torch.manual_seed(0)
    espnet_model = VITS(idim=VOCAB_SIZE, odim=LINEAR_BINS, **tts_conf).eval()
    if which == "espnet":
        return espnet_model
    from espnet2_vits_ext.vits.fast_vits import FastVITS

    ours = FastVITS(idim=VOCAB_SIZE, odim=LINEAR_BINS, **tts_conf)
    ours.load_state_dict(espnet_model.state_dict(), strict=True)
    ours.eval()
    if which == "ours":
        del espnet_model
        gc.collect()
        # Hand the freed heap back to the OS, so that the resident memory counted for
        # ours does not include ESPnet's model that lent it its weights.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return ours
    return espnet_model, ours


def make_input(tokens: int, frames_per_token: int):
    """Token ids (T_text,) and durations (T_text,) of a synthesis input, fixed seed.

    ``frames_per_token`` is the mean duration (LJSpeech: about 7 frames per espeak-ng token).
    """
    import torch

    generator = torch.Generator().manual_seed(1)
    text = torch.randint(1, 70, (tokens,), generator=generator)
    durations = torch.randint(1, 2 * frames_per_token, (tokens,), generator=generator).float()
    return text, durations


def interleaved_timing(
    steps: Dict[str, Callable[[], None]], repeats: int, warmup: int, pause_s: float = 0.0
) -> Dict[str, Dict[str, float]]:
    """Median, min and max seconds of each step; ``warmup`` untimed rounds, then
    ``repeats`` rounds that run every step once, in turn, each after ``pause_s`` idle
    seconds (see ``bench_piper_voice.SETTLE_S``)."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            time.sleep(pause_s)
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {
        name: dict(median_s=statistics.median(values), min_s=min(values), max_s=max(values))
        for name, values in times.items()
    }


def matmul_gflops(precisions=("fp32", "bf16"), size: int = 2048, repeats: int = 5) -> Dict[str, float]:
    """GFLOP/s of the fastest of ``repeats`` ``size``^3 ``torch.mm`` in each precision: how much
    of its compute this shared host gives now (on a quiet host ~227 fp32 / ~930 bf16 on the
    AVX512-BF16 EPYC with 2 threads; under other users' load bf16 falls furthest)."""
    import torch

    dtypes = dict(fp32=torch.float32, bf16=torch.bfloat16)
    rates = {}
    for precision in precisions:
        left = torch.randn(size, size).to(dtypes[precision])
        right = torch.randn(size, size).to(dtypes[precision])
        torch.mm(left, right)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(left, right)
            seconds.append(time.perf_counter() - start)
        rates[precision] = 2 * size**3 / min(seconds) / 1e9
    return rates


def reset_peak_rss() -> None:
    """Start a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")


def rss_mib(field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident memory since the last reset) or ``VmRSS`` (now), MiB."""
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_isolated(script: str, args: List[str], timeout: float = 3600) -> List[dict]:
    """Run ``bench/<script> args`` in a fresh interpreter; its stdout lines that are JSON
    objects are returned (one per measurement)."""
    command = [sys.executable, str(REPO / "bench" / script), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"bench/{script} {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def waveform_mcd_db(reference, other, sampling_rate: int) -> float:
    """Mel-cepstral distortion (dB) between two time-aligned waveforms of equal length.

    WORLD analysis (dio, 5 ms frames, order 24) of both, frame t against frame t: the
    two come from the same latent, so no DTW is needed (it could only hide differences).
    """
    import numpy as np

    from espnet2_vits_ext.evaluation.acoustic_features import (
        AnalysisConfig,
        extract_world_features,
    )
    from espnet2_vits_ext.evaluation.mel_cepstral_distortion import frame_distortions_db

    config = AnalysisConfig(f0_method="dio")
    reference_mcep = extract_world_features(
        np.asarray(reference, dtype=np.float64), sampling_rate, config
    ).mel_cepstrum
    other_mcep = extract_world_features(
        np.asarray(other, dtype=np.float64), sampling_rate, config
    ).mel_cepstrum
    frames = min(len(reference_mcep), len(other_mcep))
    return float(np.mean(frame_distortions_db(reference_mcep[:frames], other_mcep[:frames])))


def machine_description() -> dict:
    """What the figures were measured on, and how busy it was."""
    import espnet
    import torch

    cpu = "unknown"
    flags = set()
    with open("/proc/cpuinfo") as stream:
        for line in stream:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    isa = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]
    with open("/proc/meminfo") as stream:
        memory_gib = int(stream.readline().split()[1]) / 2**20
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        isa=" ".join(isa),
        memory_gib=round(memory_gib, 1),
        load_average=" ".join(f"{value:.2f}" for value in os.getloadavg()),
        python=platform.python_version(),
        torch=torch.__version__,
        onednn=(re.findall(r"MKL-DNN (v[0-9.]+)", torch.__config__.show()) or ["n/a"])[0],
        espnet=espnet.__version__,
    )
