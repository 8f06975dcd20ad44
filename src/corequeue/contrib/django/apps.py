"""The Django app of corequeue: add `"corequeue.contrib.django"` to INSTALLED_APPS."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class CoreQueueConfig(AppConfig):
    """Registers the `corequeue_worker` command and follows changes of `COREQUEUE` in tests."""

    name = "corequeue.contrib.django"
    label = "corequeue"
    verbose_name = "corequeue"

    def ready(self) -> None:
        setting_changed.connect(_settings_changed, dispatch_uid="corequeue.settings_changed")


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    from corequeue.contrib.django import SETTING, reset_factory

    if setting == SETTING:
        reset_factory()
