"""The shared rules in models: the one app-name check, with the caller's error type."""

from __future__ import annotations

import pytest

from aether.errors import BadRequest, UsageError
from aether.models import check_app_name


@pytest.mark.parametrize("name", ["a", "shop", "my-app-2", "x" * 63])
def test_dns_labels_are_app_names(name: str) -> None:
    assert check_app_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "Shop", "my_app", "x" * 64, None, 7])
def test_anything_else_is_refused_with_one_message(name: object) -> None:
    with pytest.raises(BadRequest, match="DNS-1123 label") as api_side:
        check_app_name(name)
    with pytest.raises(UsageError, match="DNS-1123 label") as cli_side:
        check_app_name(name, error=UsageError)
    assert api_side.value.http_status == 400 and cli_side.value.exit_code == 2
    assert api_side.value.message == cli_side.value.message
