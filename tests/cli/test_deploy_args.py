"""`aether deploy` argument handling that fails before any packing or network."""

from __future__ import annotations

import pytest

from aether.cli import cli
from aether.cli.boundary import run
from aether.client.deploy import parse_env_pairs
from aether.errors import UsageError


def test_env_pairs_keep_equals_signs_in_values() -> None:
    assert parse_env_pairs(["A=1", "DB_URL=postgres://x?a=b", "EMPTY="]) == {
        "A": "1",
        "DB_URL": "postgres://x?a=b",
        "EMPTY": "",
    }


@pytest.mark.parametrize("pair", ["NOEQUALS", "=s3cret", "1A=s3cret", "A-B=s3cret", "PORT=s3cret"])
def test_bad_env_pairs_are_usage_errors_that_never_repeat_the_value(pair: str) -> None:
    with pytest.raises(UsageError, match="--env") as caught:
        parse_env_pairs([pair])
    assert "s3cret" not in caught.value.message


def test_bad_env_pair_exits_2_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["deploy", "--env", "oops", "--dry-run"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_unknown_compression_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["deploy", "--compression", "xz"]) == 2
