"""pytest plugin: the longest tests start first, so a parallel run does not end with one worker
busy on a long test that began late while the others idle.

pytest-xdist (``--dist loadgroup``) hands tests out in collection order, so that order decides
what runs last. Modules move to the front as whole modules, their tests together and in their
own order (a module's fixtures are set up once per worker, not again after each move): first
those in ``LONGEST``, longest test first (measured with ``--durations``; CI prints the 25
slowest of every run, which is where a new entry comes from), then the other modules with a
test marked ``slow``, then the rest, each group in collection order. Every worker sorts the
same way, as xdist requires.

The single files' tests wait for the build the xdist controller starts when collection ends:
they come after the longest end-to-end modules, when the build is done.
"""

from __future__ import annotations

import pytest

LONGEST = (
    "tests/e2e/test_deploy_build.py",
    "tests/pack/test_staged_build.py",  # compiles an addon from source, TypeScript builds
    "tests/server/test_hostile_inputs.py",  # 60 hypothesis examples of writes per backend
    "tests/topology/test_instances.py",
    "tests/test_app_leaks.py",  # a pytest-xdist run of its own
    "tests/faults/test_api_schema.py",
    "tests/e2e/test_config_lifecycle.py",
    "tests/topology/test_replicas.py",
    "tests/cli/test_deploy_layered.py",
    "tests/e2e/test_layered_rollouts.py",
    "tests/e2e/test_worker_restart.py",
    "tests/e2e/test_dashboard_browser.py",
    "tests/e2e/test_quickstart.py",
    "tests/e2e/test_scale_restart.py",
    "tests/onefile/test_zipapp.py",
    "tests/onefile/test_release.py",
    "tests/onefile/test_platform_files.py",
    "tests/e2e/test_fetch_api.py",
    "tests/e2e/test_two_workers.py",
    "tests/e2e/test_local_rollouts.py",
)


def rank(module: str, has_slow: bool) -> int:
    """Where a module's tests go: its place in LONGEST, then slow modules, then the rest."""
    if module in LONGEST:
        return LONGEST.index(module)
    return len(LONGEST) + (0 if has_slow else 1)


@pytest.hookimpl(trylast=True)  # after any plugin that drops or reorders items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules = [item.nodeid.partition("::")[0] for item in items]
    slow = {m for m, item in zip(modules, items, strict=True) if item.get_closest_marker("slow")}
    keys = {module: rank(module, module in slow) for module in modules}
    order = sorted(range(len(items)), key=lambda index: keys[modules[index]])
    items[:] = [items[index] for index in order]
