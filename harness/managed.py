"""One shape for everything the harness starts and stops: `with X(...) as x:`."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Managed:
    """Started on entry, stopped on exit, also when the body raises: processes never outlive
    the `with` block that started them."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
