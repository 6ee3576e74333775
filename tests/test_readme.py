"""The README's and the docs' code runs exactly as written: every Python block is extracted and
run in a fresh process outside the source tree (a docs page's blocks run in order, as one
script, since later blocks use what earlier ones made)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
PAGES = {p.name: "\n".join(re.findall(r"```python\n(.*?)```", p.read_text(), flags=re.S))
         for p in sorted((README.parent / "docs").glob("*.md"))}
PAGES = {name: code for name, code in PAGES.items() if code}


def test_the_readme_has_a_quick_tour():
    assert len(BLOCKS) >= 2 and any("GDEConv" in b for b in BLOCKS)
    assert len(README.read_text().splitlines()) <= 250


def run_code(code, cwd):
    # A download attempt fails at once instead of waiting on the network.
    env = dict(os.environ, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("page", list(PAGES))
def test_docs_page_code_runs(page, tmp_path):
    run = run_code(PAGES[page], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    run = run_code(BLOCKS[index], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    accuracy = re.search(r"test accuracy ([0-9.]+)", run.stdout)
    if accuracy:  # the quick tour trains a model that must beat chance by far
        assert float(accuracy.group(1)) >= 0.6, run.stdout
