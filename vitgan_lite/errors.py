"""The project's errors for unusable user input: a file or folder someone pointed vitgan_lite at.

    InputError(ValueError)        any of them: the message names the path, says what is wrong and
    ├── DatasetError              what to do, on one line
    ├── CheckpointError           (a training checkpoint: checkpoint.py)
    ├── GeneratorFileError        (a slim generator file: pretrained.py)
    └── RunFolderError            (a run folder a trainer must not write into: loop.py)

A missing file stays a FileNotFoundError. The commands (vitgan-train, -sample, -fid, and
`python -m vitgan_lite.pretrained`) report both as argparse reports a bad option: the usage, one
error line, exit status 2 -- never a traceback (tests/test_bad_input.py).

Messages name the third-party exception's class (`cause`), never its text: that text can span many
lines, and torch's and numpy's suggest loading the file with pickling allowed -- advice nobody should
follow for a file they did not make themselves.
"""
from __future__ import annotations

# What building models and configs from a file's content raises when that content does not fit
# (unknown config keys, tensors of the wrong shape, a list where a dict belongs). ValueError is not
# among them: a caller that also validates the user's options must not mistake those for the file's.
CONTENT_ERRORS = (KeyError, TypeError, RuntimeError, AttributeError, IndexError)


class InputError(ValueError):
    """A file or folder given by the user that vitgan_lite cannot use."""


class DatasetError(InputError):
    """An .npz archive or image folder that holds no usable images."""


class CheckpointError(InputError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a vitgan_lite checkpoint)."""


class GeneratorFileError(InputError):
    """A generator file that is neither a vitgan_lite generator file nor a training checkpoint."""


class RunFolderError(InputError):
    """A run folder this trainer must not write into: a longer run's checkpoints, a corrupt log."""


def cause(exc: BaseException) -> str:
    """The part of a third-party exception a message may show: its class name (see the module doc)."""
    return type(exc).__name__
