"""Every Python snippet of the README runs as written (each in a fresh namespace, in a temporary folder), so the
documentation cannot rot. A snippet that needs the posteriordb folder is skipped where it is absent."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i + 1}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(code, tmp_path, monkeypatch, one_torch_thread):
    if "posteriordb.load" in code:
        from probrep.data import posteriordb

        try:
            found = posteriordb.available()
        except FileNotFoundError:  # no folder at all (a fresh clone without ../shared)
            found = []
        if not found:
            pytest.skip("no posteriordb folder on this machine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    exec(compile(code, str(README), "exec"), {"__name__": "readme_snippet"})
    assert os.getcwd() == str(tmp_path)
