#!/usr/bin/env python3
"""Hygiene check of the course notebooks. It reads the .ipynb files as JSON and runs nothing.

    python scripts/check_notebooks.py                 # every notebook in notebooks/
    python scripts/check_notebooks.py notebooks/03_fourier_features.ipynb
    python scripts/check_notebooks.py --strict        # warnings fail too

A notebook a reader opens on GitHub or in Colab should show the outputs of one clean run from the
top, carry nothing of the machine it ran on, and open with a title. Checked:

  ERROR  not JSON / not nbformat 4 / name not NN_snake_case.ipynb / file over the size limit
  ERROR  first cell not a markdown cell opening with a '# ' title
  ERROR  metadata.widgets without 'state' (GitHub refuses to render the notebook)
  ERROR  a code cell not executed, or execution counts not 1, 2, 3, ... (not one run from the top)
  ERROR  an error output, a machine path or a memory address in an output
  ERROR  notebook numbers with a gap
  WARN   no Colab setup cell ('google.colab'), no 'vitgan_lite' import, a warning stored on stderr

One line per problem, then a summary. Exit status: 0 clean, 1 errors (or warnings with --strict),
2 bad arguments. Standard library only, so it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 3_000_000
NOTEBOOK_NAME = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-f]{6,}")
GENERIC_MACHINE_PATHS = [r"/root/", r"/home/\w+", r"/tmp/", r"/Users/\w+", r"/usr/lib/python", r"site-packages"]


@dataclass(frozen=True)
class Problem:
    level: str     # "ERROR" or "WARN"
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.level} {self.path}: {self.message}"


def machine_path_pattern(*folders: Path) -> re.Pattern:
    """Generic home/temp/install paths, plus the given folders and their parents (never '/')."""
    local = {str(p) for f in folders for p in (f.resolve(), f.resolve().parent)} - {"/"}
    return re.compile("|".join(GENERIC_MACHINE_PATHS + [re.escape(p) for p in sorted(local, key=len, reverse=True)]))


def output_text(output: dict) -> str:
    """The text a reader sees of one output: a stream, or the text/plain and text/html of a result."""
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    data = output.get("data", {})
    return "".join(data.get("text/plain", "")) + "".join(data.get("text/html", ""))


def source(cell: dict) -> str:
    return "".join(cell.get("source", ""))


def check_notebook(path: Path, machine_paths: re.Pattern, max_bytes: int = MAX_BYTES) -> list[Problem]:
    """Every problem of one notebook file."""
    problems: list[Problem] = []

    def report(level: str, message: str) -> None:
        problems.append(Problem(level, path, message))

    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report("ERROR", f"not readable as JSON ({exc})")
        return problems
    if nb.get("nbformat") != 4:
        report("ERROR", f"nbformat {nb.get('nbformat')!r}, expected 4")
    if not NOTEBOOK_NAME.match(path.name):
        report("ERROR", "name is not NN_snake_case.ipynb")
    size = path.stat().st_size
    if size > max_bytes:
        report("ERROR", f"{size} bytes; keep a notebook under {max_bytes} (smaller figures, fewer outputs)")

    cells = nb.get("cells", [])
    if not cells or cells[0].get("cell_type") != "markdown" or not source(cells[0]).lstrip().startswith("# "):
        report("ERROR", "first cell is not a markdown cell opening with a '# ' title")
    widgets = nb.get("metadata", {}).get("widgets")
    if widgets is not None and "state" not in json.dumps(widgets):
        report("ERROR", "metadata.widgets has no 'state' (GitHub will not render it): strip the widget metadata")

    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    all_code = "\n".join(source(c) for _, c in code)
    if "google.colab" not in all_code:
        report("WARN", "no setup cell that detects Colab ('google.colab')")
    if "vitgan_lite" not in all_code:
        report("WARN", "does not import vitgan_lite")

    expected = 1                       # execution counts of one clean run: 1, 2, 3, ... over non-empty cells
    for i, cell in code:
        if not source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            report("ERROR", f"code cell {i} was not executed (outputs must come from one clean run from the top)")
            expected = None
        elif expected is not None and count != expected:
            report("ERROR", f"code cell {i} has execution_count {count}, expected {expected}: "
                            "re-run the whole notebook in a fresh kernel")
            expected = None
        elif expected is not None:
            expected += 1
        for out in cell.get("outputs", []):
            text = output_text(out)
            if out.get("output_type") == "error":
                report("ERROR", f"code cell {i} stored an error output ({out.get('ename')})")
            found = machine_paths.search(text)
            if found:
                report("ERROR", f"code cell {i} output shows a machine path: {found.group(0)!r}")
            if MEMORY_ADDRESS.search(text):
                report("ERROR", f"code cell {i} output shows a memory address (nbval cannot match it)")
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and "Warning" in text:
                report("WARN", f"code cell {i} stored a warning on stderr: fix its cause or silence it on purpose")
    return problems


def find_notebooks(paths: list[Path]) -> list[Path]:
    """The .ipynb files named, and those directly inside the folders named (checkpoints skipped)."""
    found = []
    for p in paths:
        found += [p] if p.is_file() else sorted(p.glob("*.ipynb"))
    return sorted(set(found))


def check_paths(paths: list[Path], max_bytes: int = MAX_BYTES) -> tuple[list[Path], list[Problem]]:
    """(notebooks checked, problems): every notebook's own problems plus gaps in the numbering."""
    notebooks = find_notebooks(paths)
    machine_paths = machine_path_pattern(Path.cwd(), Path(__file__).resolve().parents[1])
    problems = [p for nb in notebooks for p in check_notebook(nb, machine_paths, max_bytes)]
    numbers = sorted({int(m.group(1)) for nb in notebooks if (m := NOTEBOOK_NAME.match(nb.name))})
    if numbers and numbers != list(range(numbers[0], numbers[-1] + 1)):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        where = notebooks[0].parent
        problems.append(Problem("ERROR", where, f"notebook numbers have a gap: {missing} missing from {numbers}"))
    return notebooks, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check that course notebooks are clean: executed once from the top, titled, free of "
                    "machine paths, memory addresses and error outputs. Runs nothing.")
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("notebooks")],
                        help="notebooks or folders of notebooks (default: notebooks)")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--quiet", action="store_true", help="print only the problems, no summary line")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help=f"size limit per notebook ({MAX_BYTES})")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(map(str, missing))}")

    notebooks, problems = check_paths(args.paths, args.max_bytes)
    for problem in problems:
        print(problem)
    errors = sum(p.level == "ERROR" for p in problems)
    warnings = len(problems) - errors
    if not args.quiet:
        print(f"check_notebooks: {len(notebooks)} notebooks, {errors} errors, {warnings} warnings")
    if not notebooks:
        print("check_notebooks: no notebooks found under " + ", ".join(map(str, args.paths)), file=sys.stderr)
    return 1 if errors or (args.strict and warnings) else 0


if __name__ == "__main__":
    sys.exit(main())
