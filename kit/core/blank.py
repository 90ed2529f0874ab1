"""The blank a learner fills in: ``___`` in an exercise cell.

Exercise cells ship with ``___`` where the learner's code goes, e.g.
``kernel = ___`` or ``mine.qmp(___)``.  Run unedited, the cell must say
kindly what to fill in rather than fail with a puzzling error, so the blank
is an object of its own that the kit's checks recognise wherever it turns up.
It lives in the core layer because the hypervisor's argument checks
recognise it too (``g.run(___)``).
"""

from __future__ import annotations

from typing import Any


class Blank:
    """The one blank, ``___``; it prints as itself and is never equal to an answer."""

    _instance: Blank | None = None

    def __new__(cls) -> Blank:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "___"

    def _repr_html_(self) -> str:
        return ("<div style='border-left:5px solid #E69F00;padding:4px 8px'>"
                "✎ This cell still has a blank, <code>___</code>: replace it with your code, "
                "then run the cell again.</div>")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise BlankNotFilled(f"___.{name}")

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise BlankNotFilled("___(...)")


class BlankNotFilled(Exception):
    """A blank was used as if it were code: the learner has not filled it in yet."""

    def __init__(self, where: str) -> None:
        super().__init__(f"this cell still has a blank ({where}): replace ___ with your code, "
                         "then run the cell again.")


___ = Blank()


def is_blank(value: object) -> bool:
    return value is ___
