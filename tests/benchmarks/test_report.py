"""docs/benchmarks.md sections: a section is replaced in place, the others are kept, and runs that finish
side by side do not lose each other's sections."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # ``benchmarks`` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.report import write_section  # noqa: E402


def test_a_section_is_replaced_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    write_section("first", "one", path)
    write_section("second", "two", path)
    write_section("first", "one again", path)
    text = path.read_text()
    assert text.count("<!-- BEGIN first -->") == 1 and "one again" in text and "\none\n" not in text
    assert "<!-- BEGIN second -->\ntwo" in text
    assert text.index("BEGIN first") < text.index("BEGIN second")  # replaced where it was


def _write(args: tuple[str, int]) -> None:
    folder, index = args
    write_section(f"section_{index}", f"body {index}", Path(folder) / "benchmarks.md")


def test_runs_side_by_side_keep_every_section(tmp_path: Path) -> None:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write, [(str(tmp_path), i) for i in range(16)]))
    text = (tmp_path / "benchmarks.md").read_text()
    assert all(f"<!-- BEGIN section_{i} -->\nbody {i}" in text for i in range(16))
