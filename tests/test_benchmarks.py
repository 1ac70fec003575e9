"""benchmarks/run.py: its correctness columns are real checks (no timing is asserted here)."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")
RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(markdown: str) -> list[dict]:
    """The rows of the first markdown table in `markdown`, as dicts keyed by the header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def test_quick_fastpaths_agree_with_their_references(bench, tmp_path):
    out = tmp_path / "RESULTS.md"
    status = bench.main(["--quick", "--sections", "fastpaths", "--devices", "cpu", "--threads", "1",
                         "--out", str(out)])
    text = out.read_text()
    assert status == 0 and "\n# vitgan_lite benchmarks\n" in text
    assert "command: `python" in text and "--sections fastpaths" in text
    rows = table_rows(text)
    assert [row["case"] for row in rows] == [
        "modulated linear (forward)", "L2 attention (forward)", "dot attention (forward)",
        "L2 attention, bf16 autocast, forward+backward",
        "implicit decoder (forward)", "spectral norm, D forward+backward", "bf16 autocast, D forward+backward"]
    for row in rows:
        delta, tol = float(row["max abs Δ"]), float(row["tolerance"])
        assert math.isfinite(delta) and delta <= tol and row["check"] == "ok", row
        assert tol <= (0.1 if "bf16" in row["case"] else 1e-4), row     # the tolerances stay strict
        assert float(row["reference ms"]) > 0 and float(row["fast ms"]) > 0
    backends = set(torch.nn.attention.SDPBackend.__members__)
    notes = [line for line in text.splitlines() if "fused path: SDPA runs" in line]
    assert len(notes) == 2 and all(note.split("**")[1] in backends for note in notes)
    half = [line for line in text.splitlines() if "bf16 autocast on cpu: the package runs" in line]
    assert len(half) == 1 and half[0].split("**")[1] == "explicit logits"   # attention.flash_is_slow


def test_a_section_run_alone_replaces_only_its_part_of_the_file(bench):
    old = bench.merge("", {"header": "# old header", "fastpaths": "## Fast paths\nold", "train": "## Train\nold"})
    new = bench.merge(old, {"header": "# new header", "train": "## Train\nnew"})
    assert new.index("# new header") < new.index("## Fast paths\nold") < new.index("## Train\nnew")
    assert "old header" not in new and "## Train\nold" not in new


def test_a_wrong_fast_path_is_reported_as_a_failure(bench):
    x = torch.randn(8)
    case = bench.Case("broken", "ref", "fast", lambda: x, lambda: x + 1e-3, tol=1e-4)
    row = bench.fastpath_row(case, torch.device("cpu"), threads=1, min_run_time=0.01)
    assert row[-1] == "FAIL" and bench.FAILURES and "broken" in bench.FAILURES[-1]
    bench.FAILURES.clear()


def test_decoder_reference_is_the_module(bench):
    case = bench.decoder_case(quick=True, device=torch.device("cpu"))
    torch.testing.assert_close(case.reference(), case.fast(), rtol=1e-5, atol=1e-5)


def test_train_rows_per_device(bench):
    cpu = bench.train_configurations("cpu", quick=False)
    cuda = bench.train_configurations("cuda", quick=False)      # selection only: needs no GPU
    assert {c["precision"] for c in cpu} == {"fp32", "bf16"}
    assert {c["preset"] for c in cpu if c["compile"]} == {"tiny"}
    assert {"cifar10", "tiny"} <= {c["preset"] for c in cpu}
    assert "fp16" in {c["precision"] for c in cuda}
    assert all(any(c["compile"] and c["preset"] == p for c in cuda) for p in {c["preset"] for c in cuda})
    assert not any(c["compile"] for c in bench.train_configurations("cpu", quick=True))
    sliced = [c for c in cpu if c["micro_batches"] > 1]      # the paper-size step in slices, each precision
    assert {c["preset"] for c in sliced} == {"cifar10"} and {c["precision"] for c in sliced} == {"fp32", "bf16"}


def test_train_step_timing_runs_a_real_step(bench):
    for micro_batches in (1, 2):
        result = bench.train_step_timing("tiny", "fp32", compile=False, device="cpu", quick=True,
                                         micro_batches=micro_batches)
        assert result["batch"] == 8 and result["s_per_step"] > 0 and result["peak_mb"] >= result["start_mb"]


def test_markdown_table(bench):
    assert bench.markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
