"""The course's list of lessons: one place, lessons 0 to 9, later ones "coming"."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.core.errors import InvalidInput
from kit.lesson import catalog


def test_lessons_0_to_9_in_order_with_files_and_times() -> None:
    assert [info.number for info in catalog.LESSONS] == list(range(10))
    for info in catalog.LESSONS:
        assert info.file.startswith(f"{info.number:02d}-") and info.file.endswith(".ipynb")
        assert 5 <= info.minutes <= 90 and info.title


def test_the_lessons_written_so_far_are_available() -> None:
    assert catalog.lesson_info(0).available
    assert catalog.lesson_info(1).available


def test_every_notebook_in_lessons_is_in_the_catalog() -> None:
    listed = {info.file for info in catalog.LESSONS}
    numbered = {p.name for p in catalog.lessons_dir().glob("[0-9][0-9]-*.ipynb")}
    assert numbered <= listed, f"add these to kit/lesson/catalog.py: {numbered - listed}"


def test_an_unknown_lesson_is_refused_in_words() -> None:
    with pytest.raises(InvalidInput, match="no lesson 42"):
        catalog.lesson_info(42)


def test_the_readme_lists_every_lesson_with_its_time() -> None:
    """The README's table is written by hand: it must agree with the catalog."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for lesson in catalog.LESSONS:
        row = next((line for line in readme.splitlines()
                    if line.startswith(f"| `lessons/{lesson.file}`")), "")
        assert row.endswith(f"| {lesson.minutes} min |"), f"README row for {lesson.file}: {row!r}"
        assert lesson.available, f"{lesson.file} is listed but does not exist"


def test_each_lesson_has_its_module_named_like_its_notebook() -> None:
    import importlib

    for info in catalog.LESSONS:
        module = importlib.import_module(info.module)
        assert hasattr(module, "lesson"), f"{info.module} has no `lesson`"
    modules = {p.stem for p in Path(catalog.__file__).parent.glob("lesson[0-9][0-9]_*.py")}
    assert modules == {info.module.rsplit(".", 1)[1] for info in catalog.LESSONS}
