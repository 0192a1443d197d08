"""pytest plugin: test reports that survive the trip from an xdist worker to the controller.

Workers send reports as UTF-8; a test about file names that are not UTF-8 captures log lines
holding them (as lone surrogates, Python's stand-in for undecodable bytes), which cannot be
encoded, and the worker crashes. Such characters are sent as escapes (``\\udce9``) instead.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(config: pytest.Config, report: Any) -> Generator[None, Any, Any]:
    data = yield
    return _encodable(data)


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_encodable(item) for item in value)
    return value
