"""Benchmarks of vitgan_lite: fast paths against their references, the training step, the course.

    python benchmarks/run.py [--threads 2] [--quick] [--sections fastpaths train profile course]
                             [--devices cpu cuda] [--out benchmarks/RESULTS.md]

Sections (default: all four; with --quick all but `course`):
  fastpaths  each fast path against the plain reference kept beside it, in one process: median
             times (torch.utils.benchmark), peak memory of one call, and max |Δ| between the two
             outputs. A Δ above the case's tolerance is marked FAIL and the run exits with status 1.
  train      `Trainer.train_step` (D step with bCR, G step, EMA) per preset, precision and
             torch.compile setting, each in a fresh subprocess so that its peak memory is its own.
  profile    torch.profiler's top ops of one paper-size training step.
  course     wall time of the notebooks in fast mode (VITGAN_FAST=1 pytest notebooks/): minutes.

Every section runs on each device of --devices (default: the CPU, and CUDA when a GPU is present;
the profile on the last one). --quick shrinks every size (tiny models, a few steps) to check that
the script works: its timings mean nothing, and it writes a file only when --out is given.
Timing lives here, never in tests; tests/test_benchmarks.py checks the correctness columns.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple
from unittest import mock

import torch
from torch.utils import benchmark

from vitgan_lite import Discriminator
from vitgan_lite import attention
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention, sdpa_kernel_name
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages, cifar10_subset, offline_cifar10_dir
from vitgan_lite.fourier import coordinate_grid
from vitgan_lite.modulation import ImplicitPatchDecoder, ModulatedLinear
from vitgan_lite.precision import Precision
from vitgan_lite.spectral import power_iteration_frozen
from vitgan_lite.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FAILURES: list[str] = []          # fast paths whose output left the reference's tolerance


# ---------------------------------------------------------------- helpers

def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def sync(device: torch.device) -> None:
    """Wait for the device, so that a clock read afterwards includes the queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_s(fn: Callable, threads: int, min_run_time: float) -> float:
    """Median seconds per call of fn (torch.utils.benchmark: warm-up, blocks, CUDA sync)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def process_peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM on Linux, which starts afresh at exec. Not ru_maxrss:
    Linux carries it over from the parent across fork and exec, so a worker started by a process
    holding 1 GB would report at least 1 GB whatever it did."""
    try:
        return _proc_status_kb("VmHWM") / 1024
    except OSError:                                # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def peak_mb(fn: Callable, device: torch.device) -> float | None:
    """Memory (MB) one call of fn needs beyond what is held before it; None where not measurable.

    CUDA: the caching allocator's peak. CPU (Linux): the resident-set high-water mark VmHWM,
    reset through /proc/self/clear_refs, after malloc_trim hands freed heap pages back to the OS
    (otherwise pages freed by an earlier case would be reused without showing up as growth).
    """
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")                       # 5: reset the peak RSS to the current RSS
        before = _proc_status_kb("VmRSS")
    except OSError:                                # not Linux/glibc: no per-call peak
        return None
    fn()
    return (_proc_status_kb("VmHWM") - before) / 1024


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


# ---------------------------------------------------------------- which SDPA kernel runs

def sdpa_backend(attn: torch.nn.Module, x: torch.Tensor) -> str:
    """The SDPA kernel the fused path of `attn` runs on x, with gradients on as in training.

    Feeds attention.sdpa_kernel_name the q, k, v the module hands to SDPA: for L2 attention the
    augmented and padded ones (`l2_sdpa_inputs`)."""
    with torch.enable_grad():
        q, k, v = attn.qkv(x)                                             # each (B, heads, N, d_head)
        if isinstance(attn, L2MultiHeadAttention):
            q, k, v = attn.l2_sdpa_inputs(q, k, v)                        # each (B, heads, N, d_pad)
        return sdpa_kernel_name(q, k, v, scale=attn.scale)


# ---------------------------------------------------------------- fastpaths

class Case(NamedTuple):
    """A fast path and its reference: two functions returning comparable outputs."""
    name: str
    reference_label: str
    fast_label: str
    reference: Callable[[], torch.Tensor]
    fast: Callable[[], torch.Tensor]
    tol: float                      # largest acceptable max |reference - fast|
    note: str = ""


def sizes(quick: bool) -> tuple[GeneratorConfig, DiscriminatorConfig, int]:
    """Model configs and batch: the paper's (cifar10, batch 32) or tiny ones for --quick."""
    if quick:
        return GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), 2
    return GeneratorConfig.cifar10(), DiscriminatorConfig.cifar10(), 32


def modulated_linear_case(quick, device) -> Case:
    """The decoder's first layer: one style per patch, B*L patches of P*P pixels each."""
    g, _, batch = sizes(quick)
    layer = ModulatedLinear(g.dim, g.decoder_dim, style_dim=g.dim).to(device)
    n = batch * g.num_patches
    x = torch.randn(n, g.patch_size ** 2, g.dim, device=device)           # (B*L, P*P, D)
    style = torch.randn(n, g.dim, device=device)                          # (B*L, D)
    reference = lambda: torch.einsum("bni,boi->bno", x, layer.per_sample_weight(style)) + layer.bias
    return Case("modulated linear (forward)", "per-sample weights", "fused",
                torch.no_grad()(reference), torch.no_grad()(lambda: layer(x, style)), 1e-4)


def _attention_case(name, attention_cls, dim, heads, tokens, quick, device) -> Case:
    _, _, batch = sizes(quick)
    attn = attention_cls(dim, heads).to(device)
    x = torch.randn(batch, tokens, dim, device=device)                    # (B, N, D)
    note = f"{name}, fused path: SDPA runs **{sdpa_backend(attn, x)}** (MATH is its unfused kernel)"
    return Case(name + " (forward)", "explicit logits", "fused SDPA",
                torch.no_grad()(lambda: attn(x, return_attention=True)[0]), torch.no_grad()(lambda: attn(x)),
                1e-4, note)


def l2_attention_case(quick, device) -> Case:
    """The discriminator's attention: L+1 tokens (patches and class token)."""
    _, d, _ = sizes(quick)
    return _attention_case("L2 attention", L2MultiHeadAttention, d.dim, d.heads, d.num_patches + 1, quick, device)


def dot_attention_case(quick, device) -> Case:
    """The generator's attention: L tokens."""
    g, _, _ = sizes(quick)
    return _attention_case("dot attention", MultiHeadAttention, g.dim, g.heads, g.num_patches, quick, device)


def half_attention_case(quick, device) -> Case:
    """D's L2 attention forward+backward under half-precision autocast: SDPA's fused kernel forced
    (the reference here) against the package's path, which on the CPU under bf16 is the explicit
    logits (attention.flash_is_slow) and on a GPU the fused kernel."""
    _, d, batch = sizes(quick)
    attn = L2MultiHeadAttention(d.dim, d.heads).to(device)
    x = torch.randn(4 * batch, d.num_patches + 1, d.dim, device=device, requires_grad=True)  # the D step's 4B
    half = "fp16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bf16"

    def step(force_fused: bool) -> torch.Tensor:
        patched = mock.patch.object(attention, "flash_is_slow", lambda _: False) if force_fused else contextlib.nullcontext()
        with patched, Precision(half, device).autocast():
            out = attn(x)                                                   # (4B, N, D)
        out.float().sum().backward()
        return out.detach()
    with Precision(half, device).autocast():
        path = "explicit logits" if attention.flash_is_slow(x) else "fused SDPA"
    return Case(f"L2 attention, {half} autocast, forward+backward", "fused SDPA", f"package: {path}",
                lambda: step(True), lambda: step(False), 0.1,
                f"L2 attention under {half} autocast on {device}: the package runs **{path}**")


def decoder_reference(decoder: ImplicitPatchDecoder, y: torch.Tensor) -> torch.Tensor:
    """The naive implicit decoder: an explicit weight matrix per patch in every layer."""
    b, n, _ = y.shape
    style = y.reshape(b * n, -1)                                          # (B*L, D)
    e_fou = decoder.fourier(coordinate_grid(decoder.patch_size, device=y.device))
    h = e_fou.expand(b * n, -1, -1)                                       # (B*L, P*P, D)
    for layer in [*decoder.hidden, decoder.to_rgb]:
        h = torch.einsum("bmi,boi->bmo", h, layer.per_sample_weight(style)) + layer.bias
        h = h if layer is decoder.to_rgb else decoder.act(h)
    return h.reshape(b, n, -1)                                            # (B, L, P*P*C), (p1 p2 c)


def decoder_case(quick, device) -> Case:
    """The generator's implicit decoder f_theta on B*L patch embeddings."""
    g, _, batch = sizes(quick)
    decoder = ImplicitPatchDecoder(g.dim, g.decoder_dim, g.decoder_depth, g.patch_size, g.channels).to(device)
    y = torch.randn(batch, g.num_patches, g.dim, device=device)           # (B, L, D)
    return Case("implicit decoder (forward)", "per-sample weights", "module",
                torch.no_grad()(lambda: decoder_reference(decoder, y)), torch.no_grad()(lambda: decoder(y)), 1e-4)


def _d_and_images(quick, device):
    _, d, batch = sizes(quick)
    return Discriminator(d).to(device), torch.randn(batch, d.channels, d.image_size, d.image_size, device=device)


def spectral_norm_case(quick, device) -> Case:
    """D forward+backward refining sigma's power iteration vs frozen (the G step's D call).

    The trainer calls D twice per step and refines u once; the saving per step is one refinement.
    With u converged both give the same logits.
    """
    D, images = _d_and_images(quick, device)

    def step(frozen: bool) -> torch.Tensor:
        with power_iteration_frozen(D) if frozen else contextlib.nullcontext():
            logits = D(images)                                            # (B,)
        logits.sum().backward()
        return logits.detach()
    return Case("spectral norm, D forward+backward", "power iteration per call", "frozen",
                lambda: step(False), lambda: step(True), 1e-4)


def bf16_case(quick, device) -> Case:
    """D forward+backward in float32 vs bfloat16 autocast (fp16 on a GPU without bf16)."""
    D, images = _d_and_images(quick, device)
    half = "fp16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bf16"

    def step(precision: str) -> torch.Tensor:
        with power_iteration_frozen(D), Precision(precision, device).autocast():
            logits = D(images).float()                                    # (B,)
        logits.sum().backward()
        return logits.detach()
    return Case(f"{half} autocast, D forward+backward", "fp32", half,
                lambda: step("fp32"), lambda: step(half), 0.1)


FAST_PATH_CASES = (modulated_linear_case, l2_attention_case, dot_attention_case, half_attention_case,
                   decoder_case, spectral_norm_case, bf16_case)
FAST_PATH_HEADERS = ["case", "reference", "fast", "reference ms", "fast ms", "speed-up",
                     "reference peak MB", "fast peak MB", "max abs Δ", "tolerance", "check"]


def fastpath_row(case: Case, device, threads: int, min_run_time: float) -> list:
    """One table row: Δ from a first call of each (also their warm-up), the peak memory of one
    call of each, then the median times."""
    delta = (case.reference().float() - case.fast().float()).abs().max().item()
    ok = delta <= case.tol
    if not ok:
        FAILURES.append(f"{case.name} on {device}: max |Δ| {delta:.2e} > {case.tol:.0e}")
    ref_mb, fast_mb = peak_mb(case.reference, device), peak_mb(case.fast, device)
    ref_s, fast_s = median_s(case.reference, threads, min_run_time), median_s(case.fast, threads, min_run_time)
    return [case.name, case.reference_label, case.fast_label, ms(ref_s), ms(fast_s), f"{ref_s / fast_s:.2f}x",
            mb(ref_mb), mb(fast_mb), f"{delta:.1e}", f"{case.tol:.0e}", "ok" if ok else "FAIL"]


def fastpaths_section(opts) -> str:
    """Every fast path against its reference, on each device."""
    parts = ["## Fast paths against their references", "",
             "Medians of `blocked_autorange`; speed-up = reference / fast; peak MB: memory one call "
             "needs beyond what is held before it (CPU: peak RSS growth; CUDA: allocator peak); "
             "max abs Δ between the two outputs, checked against the tolerance. "
             + ("Tiny sizes (--quick)." if opts.quick else "Paper sizes: cifar10 configs, batch 32.")]
    for device in map(torch.device, opts.devices):
        rows, notes = [], []
        for make_case in FAST_PATH_CASES:
            torch.manual_seed(0)
            case = make_case(opts.quick, device)
            progress(f"fastpaths/{device}: {case.name}")
            rows.append(fastpath_row(case, device, opts.threads, 0.05 if opts.quick else 1.0))
            notes += [f"- {case.note}"] if case.note else []
            del case
        parts += ["", f"### {device}", "", markdown_table(FAST_PATH_HEADERS, rows), "", *notes]
    return "\n".join(parts)


# ---------------------------------------------------------------- train

def preset_configs(preset: str, quick: bool):
    """(G, D, train) configs of a preset; the paper's recipe at batch 32 for cifar10, batch 8 for --quick."""
    gcfg, dcfg = getattr(GeneratorConfig, preset)(), getattr(DiscriminatorConfig, preset)()
    if preset == "cifar10":
        tcfg = TrainConfig.cifar10().replace(batch_size=32)
    else:
        tcfg = getattr(TrainConfig, preset, TrainConfig.tiny)()
    return gcfg, dcfg, tcfg.replace(batch_size=8) if quick else tcfg


def training_data():
    """The course's CIFAR-10 subset if the offline copy is present (no download), else synthetic images."""
    if offline_cifar10_dir() is not None:
        return cifar10_subset("train_10k"), "CIFAR-10 train_10k"
    return SyntheticImages(n=2048), "synthetic"


def train_configurations(device: str, quick: bool) -> list[dict]:
    """The (preset, precision, compile) rows for a device: fp16 and compile-for-all only on CUDA.

    On the CPU, torch.compile builds for minutes, so only the tiny preset tries it."""
    cuda = device == "cuda"
    has_small = hasattr(GeneratorConfig, "small") and hasattr(DiscriminatorConfig, "small")
    presets = ["tiny"] if quick else ["cifar10", "tiny"] + (["small"] if has_small else [])
    no_bf16 = cuda and torch.cuda.is_available() and not torch.cuda.is_bf16_supported()
    precisions = ["fp32"] + ([] if no_bf16 else ["bf16"]) + (["fp16"] if cuda else [])

    def compile_options(preset):
        return [False, True] if not quick and (cuda or preset == "tiny") else [False]
    rows = [dict(preset=preset, precision=precision, compile=compile, device=device, micro_batches=1)
            for preset in presets for precision in precisions for compile in compile_options(preset)]
    # the paper-size step in two slices (micro_batch.py): the same update in less memory
    return rows + [dict(preset=presets[0], precision=precision, compile=False, device=device, micro_batches=2)
                   for precision in precisions]


STEPS = {"paper": (2, 5), "cpu": (6, 25)}   # (warm-up, timed) steps: compile may rebuild in steps 2-3


def train_step_timing(preset: str, precision: str, compile: bool, device: str, quick: bool,
                      micro_batches: int = 1) -> dict:
    """Seconds per `Trainer.train_step` (median after warm-up steps) and this process's peak memory.

    Meant to run in a fresh process (see `isolated`): CPU peak memory is the process's peak RSS,
    which then covers this configuration alone; start_mb is the peak before it (the imports)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start_mb = 0.0 if cuda else process_peak_mb()                      # torch, the imports
    gcfg, dcfg, tcfg = preset_configs(preset, quick)
    data, data_name = training_data()
    tcfg = tcfg.replace(precision=precision, compile=compile, micro_batches=micro_batches)
    trainer = Trainer(gcfg, dcfg, tcfg, data, device)
    warmup, steps = (1, 2) if quick else STEPS["paper" if preset == "cifar10" else "cpu"]
    start = time.perf_counter()
    for _ in range(warmup):                        # first steps: allocations, compilation
        trainer.train_step()
    sync(device)
    warmup_s, times = time.perf_counter() - start, []
    for _ in range(steps):
        start = time.perf_counter()
        logs = trainer.train_step()
        sync(device)
        times.append(time.perf_counter() - start)
    trainer.read_logs(logs)                        # raises on a NaN/inf loss
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else process_peak_mb()
    return {"batch": tcfg.batch_size, "s_per_step": statistics.median(times), "warmup_s": warmup_s,
            "peak_mb": peak_mb, "start_mb": start_mb, "data": data_name}


def isolated(kwargs: dict, threads: int, timeout: float) -> dict:
    """`train_step_timing(**kwargs)` in a fresh Python process; {"error": ...} if it fails or times out."""
    command = [sys.executable, __file__, "--threads", str(threads), "--worker", json.dumps(kwargs)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_section(opts) -> str:
    """The full training step per device, preset, precision and compile setting."""
    headers = ["device", "preset", "batch", "precision", "compile", "micro-batches", "s/step (median)", "images/s",
               "warm-up s", "peak memory MB", "above imports MB"]
    rows, data_name = [], ""
    for device in opts.devices:
        for config in train_configurations(device, opts.quick):
            progress(f"train: {config}")
            timeout = 1200 if config["compile"] else 900
            result = isolated({**config, "quick": opts.quick}, opts.threads, timeout)
            cells = [device, config["preset"], result.get("batch", ""), config["precision"],
                     "on" if config["compile"] else "off", config["micro_batches"]]
            if "error" in result:
                rows.append(cells + [result["error"], "", "", "", ""])
                continue
            data_name = result["data"]
            rows.append(cells + [f"{result['s_per_step']:.3f}", f"{result['batch'] / result['s_per_step']:.1f}",
                                 f"{result['warmup_s']:.1f}", f"{result['peak_mb']:.0f}",
                                 f"{result['peak_mb'] - result['start_mb']:.0f}"])
    steps = ("1 warm-up + 2 timed" if opts.quick else
             "{} warm-up + {} timed (cifar10), {} + {} (CPU presets)".format(*STEPS["paper"], *STEPS["cpu"]))
    return "\n".join([
        "## The training step", "",
        f"`Trainer.train_step`: D step with bCR (one D pass on 4B images), G step, EMA; with 2 "
        "micro-batches each step runs in two slices of the batch (the same update, half the activations). "
        f"{steps} steps, "
        f"data: {data_name}; images/s counts real images (batch / s per step). Each row is a fresh "
        "process; peak memory is its peak RSS on the CPU (torch's libraries included; the last "
        "column subtracts the peak after the imports), `torch.cuda.max_memory_allocated` on CUDA.",
        "", markdown_table(headers, rows)])


# ---------------------------------------------------------------- profile

def profile_section(opts) -> str:
    """torch.profiler's top ops by self time in one paper-size training step (tiny with --quick)."""
    device = torch.device(opts.devices[-1])
    preset = "tiny" if opts.quick else "cifar10"
    gcfg, dcfg, tcfg = preset_configs(preset, opts.quick)
    progress(f"profile: {preset} on {device}")
    trainer = Trainer(gcfg, dcfg, tcfg, training_data()[0], device)
    trainer.train_step()                                                  # warm-up
    sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        trainer.train_step()
        sync(device)
    wall = time.perf_counter() - start
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events)
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:12]
    rows = [[f"`{e.key}`", e.count, f"{getattr(e, key) / 1e3:.1f}", f"{100 * getattr(e, key) / total:.1f}"]
            for e in top]
    clock = "CUDA" if device.type == "cuda" else "CPU"
    return "\n".join([
        "## Profile of one training step", "",
        f"{preset} preset, batch {tcfg.batch_size}, precision {trainer.precision.name}, on {device}; "
        f"step wall time under the profiler {wall:.2f} s; % of the total self {clock} time of all ops "
        f"({total / 1e3:.0f} ms).", "",
        markdown_table(["op", "calls", f"self {clock} ms", "% of step"], rows)])


# ---------------------------------------------------------------- course

def course_section(opts) -> str:
    """Wall time of the course's notebooks in fast mode (nbval, as CI runs them), and per notebook."""
    progress("course: VITGAN_FAST=1 pytest notebooks/ (minutes)")
    command = [sys.executable, "-m", "pytest", "notebooks/", "-p", "no:cacheprovider", "-q",
               "--durations=0", "--durations-min=0"]
    env = {**os.environ, "VITGAN_FAST": "1", "OMP_NUM_THREADS": str(opts.threads)}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    per_notebook: dict[str, float] = {}
    for seconds, notebook in re.findall(r"^([\d.]+)s\s+(?:setup|call|teardown)\s+(\S+?\.ipynb)", done.stdout, re.M):
        per_notebook[notebook] = per_notebook.get(notebook, 0.0) + float(seconds)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    rows = [[f"`{name}`", f"{seconds:.1f}"] for name, seconds in sorted(per_notebook.items())]
    return "\n".join([
        "## The course in fast mode", "",
        f"`VITGAN_FAST=1 OMP_NUM_THREADS={opts.threads} pytest notebooks/ -p no:cacheprovider`: "
        f"**{wall:.0f} s** wall time ({summary}; exit status {done.returncode}).", "",
        markdown_table(["notebook", "seconds (sum of its cells)"], rows)])


# ---------------------------------------------------------------- main

SECTIONS = {"fastpaths": fastpaths_section, "train": train_section, "profile": profile_section,
            "course": course_section}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def header(opts) -> str:
    """The machine, the software, the date and the exact command: what the numbers depend on."""
    gpus = [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else []
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return "\n".join([
        "# vitgan_lite benchmarks", "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}",
        f"- GPU: {', '.join(gpus) or 'none'}; devices benchmarked: {', '.join(opts.devices)}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {opts.threads} threads for every row",
        f"- date: {datetime.datetime.now().isoformat(sep=' ', timespec='minutes')}; "
        f"load average at start: {load}",
        f"- command: `{opts.command}`"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every row (default 2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the speed")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS),
                        help="default: all (all but course with --quick)")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--out", help="markdown file (default benchmarks/RESULTS.md; none with --quick)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)   # JSON kwargs of train_step_timing
    opts = parser.parse_args(argv)
    opts.command = shlex.join(["python", *sys.argv] if argv is None else ["python", "benchmarks/run.py", *argv])
    opts.sections = opts.sections or [s for s in SECTIONS if not (opts.quick and s == "course")]
    opts.out = opts.out or (None if opts.quick else str(ROOT / "benchmarks" / "RESULTS.md"))
    return opts


def provenance(opts) -> str:
    """When and how a section was measured (sections may be re-run on their own)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"_Measured {datetime.datetime.now().isoformat(sep=' ', timespec='minutes')}, load average "
            f"{load}, by `{opts.command}`._")


def merge(existing: str, sections: dict[str, str]) -> str:
    """The markdown file with the given sections replaced (or added); other sections are kept."""
    blocks = dict(re.findall(r"<!-- section: (\w+) -->\n(.*?)(?=\n<!-- section: |\Z)", existing, re.S))
    blocks.update(sections)
    return "\n".join(f"<!-- section: {name} -->\n{blocks[name].rstrip()}\n"
                     for name in ["header", *SECTIONS] if name in blocks)


def main(argv=None) -> int:
    opts = parse_args(argv)
    torch.set_num_threads(opts.threads)
    if opts.worker:
        print(json.dumps(train_step_timing(**json.loads(opts.worker))))
        return 0
    out = Path(opts.out) if opts.out else None
    parts = {"header": header(opts)}
    print(parts["header"], flush=True)
    for name in opts.sections:
        parts[name] = SECTIONS[name](opts) + "\n\n" + provenance(opts)
        print("\n" + parts[name], flush=True)
        if out:                                    # rewritten after each section: a crash keeps the rest
            out.write_text(merge(out.read_text() if out.is_file() else "", parts))
    if FAILURES:
        print("\nFAILED correctness checks:\n" + "\n".join(FAILURES), file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
