"""The README's code runs exactly as written: every Python block is extracted and run in a
fresh process outside the source tree."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_a_quick_tour():
    assert len(BLOCKS) >= 2 and any("GDEConv" in b for b in BLOCKS)
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    # A download attempt fails at once instead of waiting on the network.
    env = dict(os.environ, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    run = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    accuracy = re.search(r"test accuracy ([0-9.]+)", run.stdout)
    if accuracy:  # the quick tour trains a model that must beat chance by far
        assert float(accuracy.group(1)) >= 0.6, run.stdout
