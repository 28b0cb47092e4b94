"""Atomic writes: files get the permissions of a normally created file under the umask; torch files are refused at
save time when a weights-only load could not read them back."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.atomic import atomic_torch_save, atomic_write_text
from common.checkpoint_io import safe_torch_load


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    # a fresh process so that the test's umask cannot leak into others
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from common.atomic import atomic_write_text; "
            "atomic_write_text(sys.argv[1] + '/a.txt', 'x'); open(sys.argv[1] + '/b.txt', 'w').write('x')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), oct(umask)[2:]], check=True,
                   cwd=os.path.dirname(os.path.dirname(__file__)))
    atomic = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    plain = stat.S_IMODE((tmp_path / "b.txt").stat().st_mode)
    assert atomic == plain == 0o666 & ~umask


def test_torch_files_must_load_weights_only(tmp_path):
    with pytest.raises(TypeError, match="refusing to save"):
        atomic_torch_save({"rng": np.random.default_rng(0).bit_generator.state, "a": np.zeros(3)}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    state = {"w": torch.ones(2), "step": 3, "name": "a", "best": {"auroc": None}, "rng": torch.get_rng_state()}
    atomic_torch_save(state, tmp_path / "y.pt")
    back = safe_torch_load(tmp_path / "y.pt")
    assert back["step"] == 3 and torch.equal(back["w"], torch.ones(2)) and torch.equal(back["rng"], state["rng"])


def test_atomic_text_round_trip(tmp_path):
    atomic_write_text(tmp_path / "t.txt", "hello\n")
    assert (tmp_path / "t.txt").read_text() == "hello\n"
