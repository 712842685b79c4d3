"""The task pages, in sidebar order, and the one place that maps a task to its page.

Every module here but ``base`` holds pages: each ``ModelPage`` subclass with ``tasks`` is found
without a list to edit, and the sidebar orders pages as the task contract orders their kinds.
"""

from __future__ import annotations

import importlib
import pkgutil

from zoo_gui.pages.base import AppContext, ModelPage
from zoo_runtime.contract import TASK_KINDS


def _find_pages() -> tuple[type[ModelPage], ...]:
    found: set[type[ModelPage]] = set()
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name != "base":
            module = importlib.import_module(f"{__name__}.{module_info.name}")
            found.update(c for c in vars(module).values() if isinstance(c, type) and issubclass(c, ModelPage) and c.tasks)
    order = list(TASK_KINDS)
    return tuple(sorted(found, key=lambda page: min(order.index(task) for task in page.tasks)))


PAGES: tuple[type[ModelPage], ...] = _find_pages()

PAGE_FOR_TASK: dict[str, type[ModelPage]] = {task: page for page in PAGES for task in page.tasks}


def page_for_task(task: str | None) -> type[ModelPage] | None:
    return PAGE_FOR_TASK.get(task or "")


__all__ = ["PAGES", "PAGE_FOR_TASK", "AppContext", "ModelPage", "page_for_task"]
