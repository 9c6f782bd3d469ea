"""pytest plugin, loaded (through PYTEST_PLUGINS) when medusa.web.django prepared the
test databases: pytest-django then leaves them to medusa.

Registered at pytest_configure, after pytest-django and the project's first conftest files,
so that its django_db_setup is the one pytest-django's fixtures get (of two fixtures of the
same name at the same level, pytest takes the one registered later); a conftest.py that
defines django_db_setup(django_db_setup) to add fixtures data still builds on it.
"""
from __future__ import annotations

import os
from typing import Any

from medusa.web.django import PLAN_VARIABLE


def pytest_configure(config: Any) -> None:
    if os.environ.get(PLAN_VARIABLE) and config.pluginmanager.hasplugin("django"):
        from medusa.web import django_fixtures
        config.pluginmanager.register(django_fixtures, "medusa-django-fixtures")
