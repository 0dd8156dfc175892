"""Notebooks: reports and graphs are the cell's own output in a real Jupyter kernel.

Small notebooks are executed with nbclient (as nbconvert and papermill execute them) in a kernel
of the interpreter running the tests; the cells' outputs are read back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

MiB = 2**20


def execute(cells: list[str], folder) -> list[list[dict]]:
    """Runs the cells in a fresh kernel with ``folder`` as working directory; their outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    env = dict(os.environ)
    env.pop("MEMORY_PROFILERXX_LAYOUT", None)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute(env=env)
    return [cell.outputs for cell in notebook.cells]


def data_outputs(outputs: list[dict], mime: str) -> list[str]:
    return [out["data"][mime] for out in outputs
            if out["output_type"] in ("display_data", "execute_result") and mime in out["data"]]


def stream_text(outputs: list[dict]) -> str:
    return "".join(out["text"] for out in outputs if out["output_type"] == "stream")


BUILD = """
def build(n):
    a = [0] * n
    b = bytearray(n)
    return len(a) + len(b)
"""


@pytest.fixture(scope="module")
def line_cells(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb")
    return execute([
        "%load_ext memory_profilerxx",
        BUILD,
        "%mprun -f build build(10**6)",
        "%%mprun -f build\nbuild(2 * 10**6)",
        """
        from memory_profilerxx import profile

        @profile
        def made_in_a_cell():
            data = [0] * 10**6
            return len(data)

        made_in_a_cell()
        """,
    ], folder)


def increment_of(text: str, source: str) -> float:
    row = next(line for line in text.splitlines() if source in line)
    return float(row.split()[3])


def test_mprun_table_is_the_cells_output_as_text_and_html(line_cells):
    outputs = line_cells[2]
    (text,) = data_outputs(outputs, "text/plain")
    (html,) = data_outputs(outputs, "text/html")
    assert text.startswith("Filename: ") and "ipykernel" in text.splitlines()[0]
    assert increment_of(text, "a = [0] * n") == pytest.approx(8_000_056 / MiB, abs=0.05)
    assert increment_of(text, "b = bytearray(n)") == pytest.approx(1_000_057 / MiB, abs=0.05)
    assert '<table class="memxx-lines"' in html
    assert "<th>Increment</th>" in html and "<th>Peak</th>" in html
    # The heaviest increment has the full bar: the return line, which gives a and b back
    # (-9,000,113 B); a's line has 8,000,056 / 9,000,113 of it.
    assert increment_of(text, "return len(a)") == pytest.approx(-9_000_113 / MiB, abs=0.05)
    assert 'data-share="100.0">-8.6 MiB' in html
    assert 'data-share="88.9">7.6 MiB' in html


def test_cell_mprun_and_a_profile_decorated_call_show_their_tables(line_cells):
    (text,) = data_outputs(line_cells[3], "text/plain")
    assert increment_of(text, "a = [0] * n") == pytest.approx(16_000_056 / MiB, abs=0.05)
    (html,) = data_outputs(line_cells[4], "text/html")
    assert "data = [0] * 10**6" in html
    assert data_outputs(line_cells[4], "text/plain")[0].count("7.6 MiB") >= 1


GRAPH_CELLS = [
    """
    import objgraphxx

    class Target:
        pass

    target = Target()
    holder = {"slot": target}
    objgraphxx.show_backrefs([target], max_depth=2)
    """,
    """
    chain = objgraphxx.find_backref_chain(target, objgraphxx.is_proper_module)
    objgraphxx.show_chain(chain, filename="chain.png")
    """,
    """
    import sys, types
    module = types.ModuleType("nb_cache")
    sys.modules["nb_cache"] = module
    module.CACHE = {"k": list(range(10**5))}
    objgraphxx.why_alive(module.CACHE["k"])
    """,
]


def temporary_graph_files() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "objgraph-*")))


@pytest.fixture(scope="module")
def graph_cells(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nbgraph")
    before = temporary_graph_files()
    outputs = execute(GRAPH_CELLS, folder)
    return folder, outputs, temporary_graph_files() - before


def test_show_backrefs_displays_an_svg_once_and_writes_no_file(graph_cells):
    _, outputs, new_temporary_files = graph_cells
    svgs = data_outputs(outputs[0], "image/svg+xml")
    assert len(svgs) == 1  # shown by the call; being the last expression adds nothing
    assert "Target" in svgs[0] and "<svg" in svgs[0]
    assert "Graph viewer" not in stream_text(outputs[0])
    # No image written to /tmp in place of the display (the viewer fallback's objgraph-*.png).
    assert [f for f in new_temporary_files if f.endswith(".png")] == []


def test_show_chain_with_a_filename_writes_it_and_displays_nothing_else(graph_cells):
    folder, outputs, _ = graph_cells
    assert (folder / "chain.png").read_bytes().startswith(b"\x89PNG")
    assert data_outputs(outputs[1], "image/svg+xml") == []
    assert data_outputs(outputs[1], "image/png") == []


def test_why_alive_prints_the_chain_once_and_returns_a_short_repr(graph_cells):
    _, outputs, _ = graph_cells
    printed = stream_text(outputs[2])
    assert printed.count("module nb_cache") == 1
    assert "['k'] -> list (100000 items)" in printed
    (value,) = [out["data"]["text/plain"] for out in outputs[2]
                if out["output_type"] == "execute_result"]
    assert value.startswith("<why_alive chain of 3 hops: module nb_cache -> .CACHE -> ['k']")
    assert len(value) < 200  # not the 100,000 items
    assert len(data_outputs(outputs[2], "image/svg+xml")) == 1


def test_mprofxx_plot_returns_a_figure_shown_once(tmp_path):
    dat = tmp_path / "mprofile_20240101000000.dat"
    dat.write_text("CMDLINE python job.py\n"
                   "MEM 10.000000 1704067200.0000\nMEM 30.000000 1704067201.0000\n"
                   "MEM 20.000000 1704067202.0000\n")
    (outputs,) = execute([f"""
        import mprofxx
        fig = mprofxx.plot({str(dat)!r}, title="job")
        fig
    """], tmp_path)
    pngs = data_outputs(outputs, "image/png")
    assert len(pngs) == 1
    assert "Figure" in data_outputs(outputs, "text/plain")[0]


def test_the_html_table_is_visible_in_a_headless_browser(line_cells, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-deps.sh installs it)")
    image = pytest.importorskip("PIL.Image")
    (html,) = data_outputs(line_cells[2], "text/html")
    page = tmp_path / "table.html"
    page.write_text("<html><body style='background:white'>" + html + "</body></html>")
    shot = tmp_path / "table.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1000,400",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    import numpy as np

    pixels = np.asarray(image.open(shot).convert("RGB")).astype(int)
    # The increment bars are drawn in #f4a261: the heaviest line's bar is a visible block.
    bar = int((np.abs(pixels - (0xF4, 0xA2, 0x61)).max(axis=2) <= 2).sum())
    assert bar > 500
    dark = int((pixels.sum(axis=2) < 200).sum())  # the table's text
    assert dark > 1000


def test_importing_the_packages_loads_no_display_machinery():
    probe = ("import sys, memory_profilerxx, objgraphxx, mprofxx\n"
             "from _memxx_shared import notebook\n"
             "print(sorted(m for m in ('IPython', 'matplotlib', 'graphviz', 'ipykernel')"
             " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
