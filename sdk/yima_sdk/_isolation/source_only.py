"""Imports beneath the app folder come from their reviewed .py source only: shared by the production sandbox
worker and the simulator's worker, so a folder that works under `yima-sdk dev` works on the platform."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from types import CodeType


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module's source every time; never reads (or writes) a cached .pyc."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)  # type: ignore[no-any-return]


def source_only_imports(app_folder: str) -> None:
    """Modules beneath the app folder are imported from their reviewed .py source and nothing else.

    The stock finder would prefer `__pycache__/<module>.cpython-311.pyc` (an unchecked-hash one is not even
    compared with the source) and would load a sourceless `<module>.pyc`, so shipped bytecode could run in
    place of the reviewed code. Other paths (the stdlib) keep the stock finders and their cached bytecode."""
    folder = os.path.realpath(app_folder)
    source_only = importlib.machinery.FileFinder.path_hook(
        (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES)
    )

    def hook(path: str) -> importlib.abc.PathEntryFinder:
        real = os.path.realpath(path or ".")
        if real != folder and not real.startswith(folder + os.sep):
            raise ImportError("not in the app folder")  # the next hook takes it
        return source_only(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


__all__ = ["source_only_imports"]
