"""Test-session settings shared by the unit tests and the notebooks (nbval kernels inherit them)."""
import os

os.environ.setdefault("VITGAN_FAST", "1")    # notebooks shrink their slow cells (sizes, never logic)
os.environ.setdefault("TQDM_DISABLE", "1")   # progress bars differ run to run
