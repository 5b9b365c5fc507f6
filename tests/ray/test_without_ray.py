"""Without the [ray] extra, ``llmsup map --ray`` fails with one line naming it, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_map_with_ray_but_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    hidden = tmp_path / "no_ray"
    (hidden / "ray").mkdir(parents=True)
    # What a missing package looks like to `import ray`.
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 1, "prompt": "hi"}) + "\n")
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "supervisor._llmsup", "map", str(inp), "-o", str(out)]
    done = subprocess.run(
        [*command, "--cli", "fake", "--ray", "auto"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(hidden)},
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'llm-cli-supervisor[ray]'" in lines[0]
    assert not out.exists()
