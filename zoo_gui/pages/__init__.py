"""The task pages, in sidebar order, and the one place that maps a task to its page."""

from __future__ import annotations

from zoo_gui.pages.base import AppContext, ModelPage
from zoo_gui.pages.classify import ClassifyPage
from zoo_gui.pages.gan import GanPage
from zoo_gui.pages.generate import GeneratePage
from zoo_gui.pages.sequence import SequencePage

PAGES: tuple[type[ModelPage], ...] = (ClassifyPage, GeneratePage, GanPage, SequencePage)

PAGE_FOR_TASK: dict[str, type[ModelPage]] = {task: page for page in PAGES for task in page.tasks}


def page_for_task(task: str | None) -> type[ModelPage] | None:
    return PAGE_FOR_TASK.get(task or "")


__all__ = ["PAGES", "PAGE_FOR_TASK", "AppContext", "ModelPage", "page_for_task"]
