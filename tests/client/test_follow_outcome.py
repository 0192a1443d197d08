"""How a terminal deployment becomes a result or an error (pure)."""

from __future__ import annotations

import pytest

from aether.client.follow import RolloutFailed, finished
from aether.errors import EXIT_INTERNAL


def test_running_is_returned() -> None:
    deployment = {"id": "d1", "app_name": "web", "status": "running"}
    assert finished(deployment, None) is deployment


def test_failed_uses_the_recorded_reason_first() -> None:
    deployment = {"id": "d1", "app_name": "web", "status": "failed", "failure_reason": "exit 1"}
    with pytest.raises(RolloutFailed, match="exit 1") as caught:
        finished(deployment, {"phase": "failed", "message": "other"})
    assert caught.value.exit_code == EXIT_INTERNAL and caught.value.code == "rollout_failed"


def test_failed_without_reason_falls_back_to_the_last_event() -> None:
    deployment = {"id": "d1", "app_name": "web", "status": "failed"}
    with pytest.raises(RolloutFailed, match="port 3000 never answered"):
        finished(deployment, {"phase": "health", "message": "port 3000 never answered"})


def test_superseded_before_running_is_a_failure_that_says_so() -> None:
    deployment = {"id": "d1", "app_name": "web", "status": "superseded"}
    with pytest.raises(RolloutFailed, match="newer deployment replaced it"):
        finished(deployment, None)
