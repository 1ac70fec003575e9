"""scripts/check_notebooks.py: the course notebooks pass it, and a deliberately bad notebook fails it."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_notebooks.py"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True)


def code_cell(src, count, outputs=()):
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "outputs": list(outputs), "source": src}


def stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def write(path, cells, **metadata):
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells}))
    return path


def good_cells():
    return [{"cell_type": "markdown", "metadata": {}, "source": "# 01 · A title"},
            code_cell("import sys\nif 'google.colab' in sys.modules: pass\nimport vitgan_lite", 1),
            code_cell("print(1 + 1)", 2, [stream("2\n")])]


def test_the_course_notebooks_are_clean():
    result = run("notebooks")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 errors" in result.stdout


def test_a_clean_notebook_passes(tmp_path):
    nb = write(tmp_path / "01_clean.ipynb", good_cells())
    result = run(nb, "--strict")
    assert result.returncode == 0, result.stdout
    assert "1 notebooks, 0 errors, 0 warnings" in result.stdout


def test_a_bad_notebook_fails_with_one_line_per_problem(tmp_path):
    cells = [code_cell("x = 1", 1),                                               # no title cell
             code_cell("print(x)", 3, [stream("/home/alice/course/x.py\n")]),   # count skips 2; machine path
             code_cell("y", None),                                              # never executed
             code_cell("f", 4, [{"output_type": "error", "ename": "NameError", "evalue": "f", "traceback": []},
                               {"output_type": "execute_result", "execution_count": 4, "metadata": {},
                                "data": {"text/plain": "<Foo object at 0x7f3a2b1c9d00>"}}])]
    nb = write(tmp_path / "02_Bad Name.ipynb", cells, widgets={"views": {}})
    result = run(nb)
    assert result.returncode == 1
    for message in ("name is not NN_snake_case", "first cell is not a markdown cell", "metadata.widgets",
                    "execution_count 3, expected 2", "code cell 2 was not executed", "machine path: '/home/alice'",
                    "error output (NameError)", "memory address", "no setup cell that detects Colab",
                    "does not import vitgan_lite"):
        assert message in result.stdout, (message, result.stdout)


def test_warnings_fail_only_with_strict(tmp_path):
    cells = good_cells()
    cells[2]["outputs"].append(stream("UserWarning: something\n", name="stderr"))
    nb = write(tmp_path / "01_warns.ipynb", cells)
    assert run(nb).returncode == 0
    strict = run(nb, "--strict")
    assert strict.returncode == 1 and "warning on stderr" in strict.stdout


def test_a_gap_in_the_numbering_and_bad_arguments(tmp_path):
    for name in ("01_a.ipynb", "03_c.ipynb"):
        write(tmp_path / name, good_cells())
    result = run(tmp_path)
    assert result.returncode == 1 and "gap: [2] missing" in result.stdout
    assert run(tmp_path / "nothing_here").returncode == 2
