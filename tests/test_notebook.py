"""The exploration notebook runs top to bottom against a real build.

The notebook is documentation that executes: if a layer, a field of ``catalog.json`` or a
function of ``geo_service.store.files`` changes, it is this test, not a reader, that finds out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from geo_service.build import BuildResult

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore_build.ipynb"

pytestmark = pytest.mark.slow


def _outputs(nb: nbformat.NotebookNode) -> Iterator[dict[str, Any]]:
    """Every output of every code cell, in order."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def _text(output: dict[str, Any]) -> str:
    """What a reader sees of an output as text (printed or displayed)."""
    if output["output_type"] == "stream":
        return str(output["text"])
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


def test_notebook_is_committed_without_outputs() -> None:
    # Outputs would put one machine's build (ids, paths, images) into the repository.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell has saved outputs:\n{cell.source[:200]}"
            assert cell.execution_count is None


def test_notebook_runs_on_the_session_build(
    built: BuildResult, build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel is a child process: it inherits this environment when it starts.
    monkeypatch.setenv("RISKMAP_BUILD_DIR", str(build_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = list(_outputs(nb))
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, errors
    text = "\n".join(_text(o) for o in outputs)
    assert built.build_id in text, "the notebook did not report the session build"
    assert str(build_dir.resolve()) in text, "the notebook read another builds folder"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"expected the maps and plots as images, got {len(images)}"
