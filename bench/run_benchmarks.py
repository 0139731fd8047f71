"""Run every benchmark, ours vs ESPnet's VITS, and write ``bench/RESULTS.md``.

Each benchmark runs in a fresh interpreter (``bench/bench_*.py``, see their docstrings):
the physical limit (FLOPs per audio second over the measured matmul peak), CPU synthesis
(RTF of every precision, peak memory, bf16's MCD from fp32), one training step (steps/s,
peak memory, loss values of both), alignment search alone, and data preparation (stages
3-4) when an LJSpeech-layout corpus is given. Timings of ours and ESPnet's are taken in one
process with interleaved repeats; the load average before and after is recorded, since
other processes on the machine slow both alike but add noise.

With ``--only``, the other benchmarks' figures are kept from the existing output file
(re-measure one benchmark when the machine is quiet without running them all again).

Also ours vs Piper's runtime (ONNX Runtime) on the trained voice joe (RTF, first audio, peak
memory), streaming's first audio and seams on joe, and Piper's four presets (parameters, GFLOP
per audio second, RTF fp32/bf16); and the paths to 3x ESPnet measured and left out: an int8
decoder (kernel speed, quality on joe) and ``torch.compile``. Sections written by hand (``render_sections.KEPT_HEADINGS``)
are kept as they are in the output file.

Usage: python bench/run_benchmarks.py [--corpus /path/to/ljspeech] [--quick]
           [--only limits synthesis train alignment data_prep piper_voice streaming presets int8 compile]
           [--output bench/RESULTS.md]
"""

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from typing import List
from pathlib import Path

from common import REPO, machine_description, precisions_here, run_isolated
from render_sections import (
    ESPNET_ON_JOE,
    alternatives_section,
    gpu_lines,
    kept_sections,
    piper_voice_section,
    presets_section,
    targets_section,
)

DEFAULT_CORPUS = Path("/work/shared/ljspeech-mini")
BENCHMARKS = ("limits", "synthesis", "train", "alignment", "data_prep", "piper_voice", "streaming", "presets",
              "int8", "compile")
# What must not change between figures kept from an earlier run and new ones (``--only``).
SAME_MACHINE_KEYS = ("cpu", "cores", "isa", "torch", "espnet")
TARGETS = dict(synthesis_bf16=3.0, synthesis_fp32=1.0, train=1.0, alignment=1.0)


def run_all(args) -> dict:
    repeats = dict(synthesis=["--repeats", "2", "--warmup", "1"] if args.quick else ["--repeats", "5", "--warmup", "2"],
                   train=["--repeats", "1", "--warmup", "1"] if args.quick else ["--repeats", "3", "--warmup", "1"],
                   alignment=["--repeats", "5", "--warmup", "1"] if args.quick else ["--repeats", "30", "--warmup", "5"],
                   piper_voice=["--repeats", "2", "--warmup", "1"] if args.quick else ["--repeats", "7", "--warmup", "2"])
    results = previous_results(args.output) if set(args.only) != set(BENCHMARKS) else {}
    started = time.time()

    def stage(name, script, script_args):
        print(f"[{time.time() - started:6.0f} s] {script} {' '.join(script_args)}", file=sys.stderr, flush=True)
        before = os.getloadavg()[0]
        output = run_isolated(script, script_args)
        loads = results.setdefault("load_average_1min", {}).setdefault(name, [before, before])
        loads[0], loads[1] = min(loads[0], before), max(loads[1], os.getloadavg()[0])
        return output

    for name in args.only:  # measured again now: forget the loads of an earlier run
        results.get("load_average_1min", {}).pop(name, None)

    if "limits" in args.only:
        results["limits"] = stage("limits", "bench_limits.py", [])[0]
    if "synthesis" in args.only:
        results["synthesis"] = stage("synthesis", "bench_synthesis.py", repeats["synthesis"])[0]
        results["synthesis_memory"] = {
            variant: stage("synthesis", "bench_synthesis.py", ["--memory", variant])[0]
            for variant in ("espnet-fp32", "ours-fp32", "ours-bf16")
            if variant.split("-")[1] in precisions_here()
        }
    if "train" in args.only:
        results["train"] = stage("train", "bench_train_step.py", repeats["train"])[0]
        results["train_unfused"] = stage("train", "bench_train_step.py", repeats["train"] + ["--unfused"])[0]
        results["train_memory"] = {
            model: stage("train", "bench_train_step.py", ["--memory", model])[0]
            for model in ("espnet", "ours")
        }
    if "alignment" in args.only:
        results["alignment"] = stage("alignment", "bench_alignment.py", repeats["alignment"])
    if "piper_voice" in args.only:
        results["piper_voice"] = stage("piper_voice", "bench_piper_voice.py", repeats["piper_voice"])[0]
        results["piper_voice_memory"] = {
            variant: stage("piper_voice", "bench_piper_voice.py", ["--memory", variant])[0]
            for variant in ("ort-fp32", "ort-fp32-our-export", "ours-fp32", "ours-bf16")
            if variant.split("-")[1] in precisions_here()
        }
    if "streaming" in args.only:
        results["streaming"] = stage("streaming", "bench_streaming.py", repeats["synthesis"])[0]
    if "presets" in args.only:
        results["presets"] = stage("presets", "bench_presets.py", repeats["synthesis"])[0]
    if "int8" in args.only and "bf16" in precisions_here():
        results["int8"] = stage("int8", "bench_int8_decoder.py", [])[0]
    if "compile" in args.only:
        results["compile"] = stage("compile", "bench_torch_compile.py", [])[0]
    if "data_prep" in args.only:
        if args.corpus is not None and (args.corpus / "metadata.csv").exists():
            results["data_prep"] = stage(
                "data_prep", "bench_data_prep.py",
                ["--corpus", str(args.corpus), "--copies", "2" if args.quick else "8", "--nj", "1"],
            )
        else:
            print(f"no corpus at {args.corpus}: data preparation not measured", file=sys.stderr)
    return results


NOTES = [
    "## What was done, tried and left", "",
    "- Synthesis, done: the decoder (97% of the FLOPs) runs, at inference on CPU, on oneDNN kernels "
    "with weights folded (weight norm) and prepacked once, the signal kept channels-last as (B, C, 1, T), "
    "LeakyReLU fused into the first conv of each residual step, the residual sum into the second "
    "(in place after the first step), tanh into the output conv (`espnet2_vits_ext/acceleration/packed_decoder.py`). "
    "The same in fp32 (default: same outputs as ESPnet to ~1e-7) and in bf16 (opt-in, on CPUs with native "
    "bfloat16: `tts_conf: inference_precision: bf16`, `FastVITS.set_inference_precision`, "
    "`synthesize --precision bf16`; for `espnet2.bin.tts_inference`, a config copy written by "
    "`local/set_inference_precision.py`).",
    "- Synthesis, found while profiling (one-off `torch.profiler` runs during development, not re-measured "
    "here): plain bf16 autocast is slow because `F.conv1d`/`F.conv2d` reorder a bf16 weight at every call "
    "(about as long as a small convolution), hence the prepacked weights; channels-last gained most on the "
    "narrow late stages of the decoder; in bf16 the decoder's convolutions run close to the peak (the "
    "32-channel stage lowest), and the text encoder and the flow, still in fp32, are the largest remaining "
    "share of the time.",
    "- Synthesis, measured and left out (section 7): an int8 decoder (oneDNN's int8 kernels are 2x bf16's, "
    "but per-tensor int8 activations take the voice about as far from fp32 as another sampling noise) and "
    "`torch.compile` (slower than the packed decoder in fp32 and bf16); an ONNX Runtime path of our own "
    "(ONNX Runtime on our export of the imported voice, section 5's `ort-fp32-our-export`, runs as fast as on "
    "Piper's own graph, slower than ours fp32). Not tried: cache-blocking across layers "
    "(depth-first over time chunks with halos; in a development profile the convolutions ran at ~90% of the bf16 peak in "
    "the wide stages, and the elementwise work left between them was ~5% of the decoder).",
    "- Training: the benchmark found that a seeded step did not give ESPnet's losses (text encoder: ESPnet "
    "draws layer-drop numbers at every call, and dropout masks follow memory layout): fixed, the first-step "
    "losses are now equal. `conf/train.yaml` uses AdamW's `fused: true` (the same update in one kernel); "
    "section 2 gives both optimizers where they were measured.",
    "- Timings on a shared 2-core machine move with other users' load (the load averages above): the "
    "ratios come from interleaved repeats in one process, but absolute figures under load can be 2-5x "
    "slower, and bf16 suffers most (many short parallel kernels wait for a descheduled thread).", "",
]


def previous_results(path: Path) -> dict:
    """The raw figures of an earlier RESULTS.md, so that ``--only`` re-measures some
    benchmarks and keeps the others (each with the load it was measured under)."""
    if not path.exists():
        return {}
    text = path.read_text()
    if "```json" not in text:
        return {}
    return json.loads(text.split("```json", 1)[1].split("```", 1)[0])


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _check(value: float, target: float) -> str:
    return "met" if value >= target else "**not met**"


def optimizer_name(train: dict) -> str:
    # Figures taken before the benchmark had --unfused used ESPnet's (unfused) settings.
    return "AdamW fused (`conf/train.yaml`)" if train.get("fused_optimizer") else "AdamW (ESPnet's settings)"


def bf16_bound_note(synthesis: dict, min_rtf: dict) -> str:
    """How far the bf16 target is from what this machine allows, from the measured figures."""
    espnet_rtf, ours_rtf = synthesis["espnet-fp32"]["rtf"], synthesis["ours-bf16"]["rtf"]
    target = TARGETS["synthesis_bf16"]
    ceiling = espnet_rtf / min_rtf["bf16"]  # speed-up over ESPnet fp32 at the bf16 peak
    peak_ratio = synthesis["peak_gflops"]["bf16"]["best"] / synthesis["peak_gflops"]["fp32"]["best"]
    text = (f"- What bounds the bf16 speed-up: ESPnet's fp32 synthesis runs at "
            f"{_fmt(100 * min_rtf['fp32'] / espnet_rtf, 0)}% of this machine's fp32 peak and bf16's peak "
            f"is {_fmt(peak_ratio, 1)}x fp32's, so the same work in bf16 can be at most {_fmt(ceiling, 1)}x "
            f"faster than ESPnet's fp32 here. ")
    if ceiling < target:
        return text + (f"The {target:.0f}x target is out of reach on this CPU for the same work: it needs a "
                       "faster bf16 unit (AMX) or less work per sample (a smaller decoder; int8: section 7).")
    return text + (f"{target:.0f}x needs {_fmt(100 * target / ceiling, 0)}% of the bf16 peak over the whole "
                   f"synthesis; ours runs at {_fmt(100 * min_rtf['bf16'] / ours_rtf, 0)}%. What is left is "
                   "in section 7 and under \"What was done, tried and left\" below.")


def _header_lines(results: dict, machine_after: dict, command: str) -> List[str]:
    """The title, the commands that wrote the file, the method and the machine."""
    lines = ["# Benchmarks: ours (`tts: fast_vits`) vs ESPnet's VITS", ""]
    machine_before = results["machine"]
    commands = sorted(set(results.get("commands", {}).values())) or [command]
    lines += ["Written by (each `bench/bench_*.py` docstring says what it measures):", "", "```"]
    lines += commands + ["```", ""]
    lines += [
        "Same configuration (`conf/train.yaml`'s `tts_conf`, vocabulary 78, 513 linear bins), same "
        "weights (ours loads ESPnet's `state_dict` strictly), same inputs and seeds. Timings: median "
        "of the repeats after warm-up, ours and ESPnet's interleaved in one process; memory: a fresh "
        "process per model, peak resident set (VmHWM, reset after building the model).", "",
        "## Machine", "",
        "| | |", "|---|---|",
    ]
    for key in ("cpu", "cores", "isa", "memory_gib", "python", "torch", "onednn", "espnet"):
        lines.append(f"| {key} | {machine_before[key]} |")
    if machine_after is not None:
        lines.append(f"| load average (1, 5, 15 min) before / after the last run | {machine_before['load_average']} / "
                     f"{machine_after['load_average']} |")
    for name, (low, high) in results.get("load_average_1min", {}).items():
        lines.append(f"| 1-min load average during {name} (lowest - highest seen) | {low:.2f} - {high:.2f} |")
    lines += [""] + gpu_lines()

    return lines


def _synthesis_lines(results: dict) -> List[str]:
    """Section 1: CPU synthesis, ours and ESPnet's, fp32 and bf16, with the distance from the limit."""
    synthesis, limits = results.get("synthesis"), results.get("limits")
    if not synthesis:
        return []
    if limits:
        # The limit from the peak measured in the synthesis rounds (same load as the RTFs).
        min_rtf = {precision: limits["gflop_per_audio_s"] / peak["best"]
                   for precision, peak in synthesis["peak_gflops"].items()}
    lines: List[str] = []
    memory = results["synthesis_memory"]
    lines += ["## 1. CPU synthesis (2 threads)", "",
              f"{synthesis['tokens']} phoneme tokens, given durations, {_fmt(synthesis['audio_s'], 2)} s "
              "of audio at 22.05 kHz; noise scales 0.667 / 0.8 with a fixed seed. RTF = synthesis "
              "seconds / audio seconds (lower is better).", "",
              "| variant | RTF (median) | min - max s | speed-up vs ESPnet fp32 | peak RSS MiB (model) | distance from the limit |",
              "|---|---|---|---|---|---|"]
    for variant in ("espnet-fp32", "espnet-bf16", "ours-fp32", "ours-bf16"):
        if variant not in synthesis:
            continue
        figures = synthesis[variant]
        mem = memory.get(variant)
        mem_text = f"{_fmt(mem['peak_rss_mib'], 0)} ({_fmt(mem['model_rss_mib'], 0)})" if mem else "-"
        limit_text = "-"
        if limits:
            precision = variant.split("-")[1]
            limit_text = f"{_fmt(figures['rtf'] / min_rtf[precision], 2)}x the {precision} limit"
        lines.append(
            f"| {variant} | {_fmt(figures['rtf'])} | {_fmt(figures['min_s'], 2)} - {_fmt(figures['max_s'], 2)} "
            f"| {_fmt(synthesis['speedup_over_espnet_fp32'][variant], 2)}x | {mem_text} | {limit_text} |"
        )
    speedups = synthesis["speedup_over_espnet_fp32"]
    lines.append("")
    if "ours-bf16" in synthesis:
        lines += [
            f"- Precision: MCD between ours bf16 and ours fp32 waveforms: "
            f"**{_fmt(synthesis['mcd_db_ours_bf16_vs_fp32'], 3)} dB** (ESPnet under bf16 autocast vs "
            f"its fp32: {_fmt(synthesis['mcd_db_espnet_bf16_vs_fp32'], 3)} dB; for scale, another noise "
            f"seed in fp32: {_fmt(synthesis['mcd_db_ours_fp32_other_noise_seed'], 2)} dB).",
            f"- Target: ours bf16 >= {TARGETS['synthesis_bf16']:.0f}x ESPnet fp32: "
            f"{_fmt(speedups['ours-bf16'], 2)}x, {_check(speedups['ours-bf16'], TARGETS['synthesis_bf16'])}.",
        ]
    else:
        lines.append("- bf16 not measured: this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
                     "and our bf16 path refuses to run without it.")
    lines += [f"- Target: ours fp32 not slower than ESPnet fp32: {_fmt(speedups['ours-fp32'], 2)}x, "
              f"{_check(speedups['ours-fp32'], TARGETS['synthesis_fp32'])}; largest sample difference "
              f"between the two waveforms {synthesis['max_abs_diff_ours_vs_espnet_fp32']:.1e}.", ""]
    if limits and "ours-bf16" in synthesis:
        lines += [bf16_bound_note(synthesis, min_rtf), ""]
    return lines


def _limits_lines(results: dict) -> List[str]:
    """The physical limit of synthesis: GFLOP per audio second and the measured peaks."""
    synthesis, limits = results.get("synthesis"), results.get("limits")
    if not limits:
        return []
    lines: List[str] = []
    lines += ["## Physical limit of synthesis", "",
              f"{_fmt(limits['gflop_per_audio_s'], 1)} GFLOP per second of audio "
              f"(decoder {_fmt(100 * limits['decoder_share'], 1)}%; `FlopCounterMode` on ESPnet's model, "
              "the same architecture). Peak of a large matrix product on 2 threads "
              "(`torch.mm` 2048^3, and oneDNN convolutions over long channels-last signals: a 1x1 one, "
              "i.e. a GEMM, and the decoder's dominant shapes; the fastest repeat, GFLOP/s):", ""]
    shapes = [name for name in limits["peak_gflops"]["fp32"] if name != "best"]
    lines += ["| precision | " + " | ".join(shapes) + " | peak | lowest possible RTF |",
              "|---" * (len(shapes) + 3) + "|"]
    sources = [("alone", limits["peak_gflops"])]
    if synthesis:
        sources.append(("in the synthesis rounds", synthesis["peak_gflops"]))
    for where, peaks in sources:
        for precision, peak in peaks.items():  # bf16 only where the CPU has it
            lines.append(
                f"| {precision}, {where} | " + " | ".join(_fmt(peak[name], 0) for name in shapes)
                + f" | {_fmt(peak['best'], 0)} | {_fmt(limits['gflop_per_audio_s'] / peak['best'])} |"
            )
    lines += ["", "The distances from the limit in section 1 use the peaks measured in the synthesis "
              "rounds (interleaved with the synthesis repeats, so under the same load).", ""]
    return lines


def _train_lines(results: dict) -> List[str]:
    """Section 2: one training step, ours and ESPnet's, time, memory, losses and the limit."""
    train = results.get("train")
    limits = results.get("limits")
    if not train:
        return []
    lines: List[str] = []
    memory = results["train_memory"]
    unfused = results.get("train_unfused")
    lines += ["## 2. One training step on CPU (2 threads)", "",
              f"Discriminator turn then generator turn, batch {train['batch_size']} (text 150-90 tokens, "
              "870-550 frames), the recipe's AdamW settings, both models seeded alike.", "",
              "| model | optimizer | s/step (median) | steps/s | peak RSS MiB |", "|---|---|---|---|---|"]
    rows = [(train, optimizer_name(train))] + ([(unfused, optimizer_name(unfused))] if unfused else [])
    for figures_of, optimizer in rows:
        for model in ("espnet", "ours"):
            figures = figures_of[model]
            peak = _fmt(memory[model]["peak_mib"], 0) if figures_of is train else "-"
            lines.append(f"| {model} | {optimizer} | {_fmt(figures['median_s'], 2)} | "
                         f"{_fmt(figures['steps_per_s'], 3)} | {peak} |")
    losses = train["ours"]["first_step_losses"]
    lines += ["",
              f"- Same optimizer: speed-up {_fmt(train['speedup'], 2)}x (target: not slower, "
              f"{_check(train['speedup'], TARGETS['train'])}); first-step losses agree to a relative "
              f"{train['max_rel_loss_diff']:.1e} (" + ", ".join(
                  f"{name.replace('generator_', 'g_').replace('discriminator_', 'd_')} {value:.4f}"
                  for name, value in losses.items()) + ")."]
    if limits and limits.get("train_batch_size") == train["batch_size"]:
        peak = limits["peak_gflops"]["fp32"]["best"]
        fastest = limits["train_step_gflop"] / peak
        lines.append(f"- Physical limit: one step is {_fmt(limits['train_step_gflop'], 0)} GFLOP (`FlopCounterMode`, "
                     f"both turns, forward and backward); at the fp32 peak ({_fmt(peak, 0)} GFLOP/s) it takes at "
                     f"least {_fmt(fastest, 2)} s: ours is {_fmt(train['ours']['median_s'] / fastest, 1)}x that.")
    if unfused:
        recipe_speedup = unfused["espnet"]["median_s"] / train["ours"]["median_s"]
        lines.append(f"- Recipe against recipe (ours with fused AdamW vs ESPnet's VITS with its own "
                     f"AdamW settings): {_fmt(recipe_speedup, 2)}x.")
    lines.append("")
    return lines


def _alignment_lines(results: dict) -> List[str]:
    """Section 3: the monotonic alignment search alone."""
    alignment = results.get("alignment")
    if not alignment:
        return []
    lines: List[str] = []
    lines += ["## 3. Monotonic alignment search alone (CPU)", "",
              "ESPnet's installed `maximum_path` (its wheel ships no compiled Cython, so it runs the numba "
              "fallback, as for a user) vs ours: `search_durations` (what our model calls) and "
              "`maximum_path` (ESPnet's interface, dense path). Same paths: checked.", "",
              "| B x T_feats x T_text | ESPnet ms | ours search_durations ms | ours maximum_path ms | speed-up (search / dense) | same paths |",
              "|---|---|---|---|---|---|"]
    for row in alignment:
        lines.append(
            f"| {row['size']} | {_fmt(row['espnet_maximum_path_ms'], 2)} | {_fmt(row['ours_search_durations_ms'], 2)} "
            f"| {_fmt(row['ours_maximum_path_ms'], 2)} | {_fmt(row['speedup_search_durations'], 1)}x / "
            f"{_fmt(row['speedup_maximum_path'], 1)}x | {row['same_paths']} |"
        )
    lines.append("")
    return lines


def _data_prep_lines(results: dict) -> List[str]:
    """Section 4: data preparation, stages 3 and 4."""
    data_prep = results.get("data_prep")
    if not data_prep:
        return []
    lines: List[str] = []
    lines += ["## 4. Data preparation (stages 3-4), one job", "",
              f"The 24 real LJSpeech clips of the mini corpus, each listed {data_prep[0]['clips'] // 24} times "
              f"({data_prep[0]['clips']} clips).", "",
              "| stage | wall s | CPU s | clips/s/core (wall) | clips per CPU second |", "|---|---|---|---|---|"]
    for row in data_prep:
        lines.append(f"| {row['stage']} | {_fmt(row['wall_s'], 2)} | {_fmt(row['cpu_s'], 2)} | "
                     f"{_fmt(row['clips_per_s_per_core_wall'], 1)} | {_fmt(row['clips_per_cpu_s'], 1)} |")
    lines.append("")
    return lines


def render(results: dict, machine_after: dict, command: str, previous_text: str = "") -> str:
    """RESULTS.md from the raw figures (hand-written sections of ``previous_text`` kept)."""
    lines = _header_lines(results, machine_after, command)
    for section in (_synthesis_lines, _limits_lines, _train_lines, _alignment_lines, _data_prep_lines):
        lines += section(results)
    if results.get("piper_voice"):
        lines += piper_voice_section(results["piper_voice"], results.get("piper_voice_memory", {}), results.get("streaming"))
    if results.get("presets"):
        lines += presets_section(results["presets"])
    lines += alternatives_section(results.get("int8"), results.get("compile"))
    lines += ESPNET_ON_JOE + kept_sections(previous_text) + [""] + targets_section(results)
    lines += NOTES + ["## Raw figures", "", "```json", json.dumps(results, indent=1), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS if DEFAULT_CORPUS.exists() else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test, not figures)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--render_only", action="store_true", help="rewrite the output from its raw figures")
    args = parser.parse_args()
    command = "python bench/run_benchmarks.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if args.render_only:
        results = previous_results(args.output)
        machine_after = None
    else:
        machine = machine_description()
        kept = previous_results(args.output).get("machine") if set(args.only) != set(BENCHMARKS) else None
        if kept and any(kept[key] != machine[key] for key in SAME_MACHINE_KEYS):
            parser.error(f"{args.output} was measured on another machine ({kept['cpu']}, {kept['isa']}): "
                         "re-measure every benchmark or write to another --output")
        results = run_all(args)
        results["machine"] = machine
        machine_after = machine_description()
    for name in [] if args.render_only else args.only:
        results.setdefault("commands", {})[name] = f"{command.strip()}  # {datetime.datetime.now():%Y-%m-%d %H:%M}"
    if not args.render_only:  # the figures survive a failure of render()
        raw = args.output.with_suffix(".raw.json")
        raw.write_text(json.dumps(results, indent=1))
        print(f"raw figures in {raw}", file=sys.stderr)
    text = render(results, machine_after, command.strip(),
                  args.output.read_text() if args.output.exists() else "")
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(args.output)
    if not args.render_only:
        raw.unlink()
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
