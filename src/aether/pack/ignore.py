"""Which paths stay out of an artifact: built-in exclusions plus ``.aetherignore``.

``.aetherignore`` at the project root uses gitignore semantics through ``pathspec``: ``#``
comments, ``!`` negation, ``dir/`` patterns that match only directories, ``**``. As in git, a
file cannot be re-included once a parent directory is excluded (the walk never enters it).
Always left out: ``.git`` folders, the ``.aether/`` output folder, and the files aether is
writing for this very pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from aether.errors import IOFailure

IGNORE_FILE = ".aetherignore"
OUTPUT_DIR = ".aether"
ALWAYS_EXCLUDED_NAMES = frozenset({".git"})


class IgnoreRules:
    """Decides, for a relative POSIX path, whether the walk leaves it out."""

    def __init__(
        self,
        lines: Iterable[str] = (),
        excluded: Iterable[str] = (),
        excluded_names: Iterable[str] = ALWAYS_EXCLUDED_NAMES,
    ) -> None:
        patterns = [line for line in lines if line.strip()]
        self._spec = None
        if patterns:
            import pathspec  # ~50 ms to import: only for projects that have patterns

            self._spec = pathspec.GitIgnoreSpec.from_lines(patterns)
        self._excluded = frozenset(excluded) | {OUTPUT_DIR}
        self._names = frozenset(excluded_names)

    @classmethod
    def for_project(
        cls,
        root: Path,
        excluded: Iterable[str] = (),
        excluded_names: Iterable[str] = ALWAYS_EXCLUDED_NAMES,
    ) -> IgnoreRules:
        path = root / IGNORE_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        except (OSError, UnicodeDecodeError) as exc:
            raise IOFailure(f"cannot read {path}: {exc}") from exc
        return cls(lines, excluded, excluded_names)

    def plain_exclusions(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """(excluded relative paths, excluded folder names) when no pattern is set, else None."""
        if self._spec is not None:
            return None
        return self._excluded, self._names

    def file_filter(self) -> Callable[[str], bool]:
        """``ignored(rel, name, is_dir=False)`` as a one-argument test, cheaper per call."""
        excluded, spec = self._excluded, self._spec
        if spec is None:
            return excluded.__contains__
        return lambda rel: rel in excluded or spec.match_file(rel)

    def ignored(self, rel: str, name: str, *, is_dir: bool) -> bool:
        if rel in self._excluded or (is_dir and name in self._names):
            return True
        if self._spec is None:
            return False
        return self._spec.match_file(rel + "/" if is_dir else rel)
