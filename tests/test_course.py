"""vitgan_lite.course.cmp: the notebooks' comparison helper reports and enforces closeness."""
import pytest
import torch

from vitgan_lite.course import cmp, max_abs_diff


def test_cmp_exact(capsys):
    x = torch.arange(6.0).reshape(2, 3)
    assert cmp("same", x, x.clone()) == 0.0
    out = capsys.readouterr().out
    assert "exact: True" in out and "approx: True" in out and "max|Δ|: 0.0e+00" in out


def test_cmp_approximate_reports_the_difference(capsys):
    x = torch.zeros(4)
    y = x + torch.tensor([0.0, 1e-7, -3e-7, 0.0])
    assert cmp("close", x, y) == pytest.approx(3e-7, rel=1e-3)
    out = capsys.readouterr().out
    assert "exact: False" in out and "approx: True" in out and "3.0e-07" in out


def test_cmp_raises_when_far_or_shapes_differ():
    with pytest.raises(AssertionError, match="max"):
        cmp("far", torch.zeros(3), torch.tensor([0.0, 0.1, 0.0]))
    with pytest.raises(AssertionError, match="shape"):
        cmp("shape", torch.zeros(3), torch.zeros(1, 3))


def test_max_abs_diff_in_float64():
    a = torch.tensor([1.0], dtype=torch.float32)
    b = torch.tensor([1.0 + 2**-20], dtype=torch.float64)
    assert max_abs_diff(a, b) == 2**-20
    assert max_abs_diff(torch.zeros(0), torch.zeros(0)) == 0.0


def test_sanitizer_hides_machine_dependent_numbers():
    import re
    from configparser import ConfigParser
    from pathlib import Path
    cfg = ConfigParser()
    cfg.read(Path(__file__).parents[1] / "notebooks" / "sanitize.cfg", encoding="utf-8")
    line = "decoder                          exact: False  approx: True   max|Δ|: 2.9e-06"
    assert re.sub(cfg["cmp"]["regex"], cfg["cmp"]["replace"], line).endswith("CMP")
