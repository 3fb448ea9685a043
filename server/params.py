"""Shared bounds of path and query parameters: a number no column can hold is refused before it reaches SQL."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter

INT64_MAX = 2**63 - 1
"""PostgreSQL's bigint; every row id is one."""

RowId = Annotated[int, PathParameter(ge=1, le=INT64_MAX, description="A row id (1 to 2^63-1)")]
