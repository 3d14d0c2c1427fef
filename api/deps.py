"""Typed dependencies: settings and the shared Assistant (opened lazily, reopened when built)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from api.errors import APIError
from qa.assistant import Assistant
from qa.config import Settings
from qa.store import IndexMismatch, IndexNotFound


class AssistantHolder:
    """Opens the index on first use so the server can start before `qa ingest` has run."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._bot: Assistant | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    def get(self) -> Assistant:
        if self._bot is not None:
            return self._bot
        with self._lock:
            if self._bot is None:
                try:
                    self._bot = Assistant.open(settings=self.settings)
                    self.error = None
                except IndexNotFound as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_missing", str(exc)) from None
                except IndexMismatch as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_mismatch", str(exc)) from None
        return self._bot

    @property
    def loaded(self) -> Assistant | None:
        return self._bot


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_holder(request: Request) -> AssistantHolder:
    return request.app.state.holder


def get_assistant(holder: Annotated[AssistantHolder, Depends(get_holder)]) -> Assistant:
    return holder.get()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HolderDep = Annotated[AssistantHolder, Depends(get_holder)]
AssistantDep = Annotated[Assistant, Depends(get_assistant)]
