"""Which segments a reader counts: merged segments replace their inputs without a window of duplicates.

Readers list a partition's files and open them afterwards, so no file may vanish under them and a listing
that catches a merged segment next to its inputs must still count every span once. Compaction therefore never
deletes or renames its inputs: it adds one *merged* segment whose name says what it covers, and every reader
applies the same rule to whatever it listed:

* ``<walend>-flush-…`` is level 0; ``<walend>-compact-…`` (older stores) level 1, active at once;
  ``<walend>-merged-<LLLL><active_ms:14><random:14>`` is level ``LLLL``, active from the Unix time ``active_ms``.
* A merged segment of level L holds every span of the segments of level < L with walend ≤ its walend in its
  partition (compaction merges all of them that are still counted). Such a segment *covers* them: once active,
  they are not counted; before it is active, it is not counted itself and they are.
* Several collectors share a store with distinct writer ids, in the name (``w<id>-…``; none for writer "0").
  Walends are offsets in each writer's own log, so a segment covers only segments of its own writer. Closing
  a day merges every writer's segments into one segment of writer ``all`` (duplicates re-sent to another
  collector after a failover removed) plus, per writer, an empty merged segment that covers that writer's
  inputs, all with the same activation time: the rule above, applied per writer, then counts each span once.
* ``embedded`` segments (walend 0, written without a log) are never merged and never covered.

A reader decides from the file names alone plus its own clock, so two listings taken at different instants
(DuckDB's glob for rows and its ``glob()`` for the covered set) agree: a merged segment only turns active a
moment after its rename, by when every listing holds it. Covered files are deleted a grace period after their
cover turned active, longer than any query is expected to run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FLUSH: Final = "flush"
LEGACY_COMPACT: Final = "compact"
MERGED: Final = "merged"
COVER: Final = "cover"  # an empty merged segment: it only hides one writer's inputs of a merge across writers
EMBEDDED: Final = "embedded"

_NAME: Final = re.compile(
    r"^(?:w(?P<writer>[a-z0-9]{1,16})-)?(?P<walend>\d{20})-(?P<kind>[a-z]+)-(?P<uid>[0-9a-f]{32})\.parquet$"
)
_MERGED_UID: Final = re.compile(r"^(?P<level>\d{4})(?P<active>\d{14})[0-9a-f]{14}$")
MAX_LEVEL: Final = 9999  # closing a day again after late spans adds a level
_SQL_NAME: Final = r"^(w[a-z0-9]{1,16}-)?(\d{20})-([a-z]+)-([0-9a-f]{32})\.parquet$"  # _NAME without group names


@dataclass(frozen=True)
class SegmentName:
    walend: int
    kind: str
    level: int | None  # None: never merged, never covered (embedded, unknown kinds)
    active_ms: int  # 0: active from the start
    writer: str = "0"


def parse(name: str) -> SegmentName | None:
    """What a segment's file name says; None for files that are not segments (``_schema.parquet``)."""
    match = _NAME.match(name)
    if match is None:
        return None
    walend, kind, writer = int(match["walend"]), match["kind"], match["writer"] or "0"
    if kind == FLUSH:
        return SegmentName(walend, kind, 0, 0, writer)
    if kind == LEGACY_COMPACT:
        return SegmentName(walend, kind, 1, 0, writer)
    if kind in (MERGED, COVER):
        uid = _MERGED_UID.match(match["uid"])
        if uid is not None:
            return SegmentName(walend, kind, int(uid["level"]), int(uid["active"]), writer)
    return SegmentName(walend, kind, None, 0, writer)


def merged_name(
    walend: int, level: int, active_ms: int, random_hex: str, *, writer: str = "0", kind: str = MERGED
) -> str:
    if not 1 <= level <= MAX_LEVEL:
        msg = f"merge level must be within 1..{MAX_LEVEL}, got {level}"
        raise ValueError(msg)
    prefix = "" if writer == "0" else f"w{writer}-"
    return f"{prefix}{walend:020d}-{kind}-{level:04d}{active_ms:014d}{random_hex[:14]}.parquet"


def covers(cover: SegmentName, other: SegmentName) -> bool:
    return (
        cover.writer == other.writer
        and cover.level is not None
        and cover.level >= 1
        and other.level is not None
        and other.level < cover.level
        and other.walend <= cover.walend
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def counted(paths: Iterable[Path], *, at_ms: int | None) -> list[Path]:
    """The files of one partition (or several) a reader counts at ``at_ms``; ``None``: the writer's view,
    where every merged segment counts at once (the writer knows it finished its rename)."""
    named = [(path, parse(path.name)) for path in paths]
    active = [
        (path.parent, name)
        for path, name in named
        if name is not None
        and name.level is not None
        and name.level >= 1
        and (at_ms is None or name.active_ms <= at_ms)
    ]
    kept = []
    for path, name in named:
        if name is None:
            kept.append(path)
            continue
        if at_ms is not None and name.active_ms > at_ms:
            continue
        if any(folder == path.parent and covers(cover, name) for folder, cover in active):
            continue
        kept.append(path)
    return kept


def expired(paths: Iterable[Path], *, at_ms: int, grace_ms: int) -> list[Path]:
    """Covered files whose cover turned active more than ``grace_ms`` ago: no reader can still need them."""
    named = [(path, parse(path.name)) for path in paths]
    covers_by_folder: dict[Path, list[tuple[SegmentName, int]]] = {}
    for path, name in named:
        if name is not None and name.level is not None and name.level >= 1:
            since = name.active_ms or int(path.stat().st_mtime * 1000)
            covers_by_folder.setdefault(path.parent, []).append((name, since))
    return [
        path
        for path, name in named
        if name is not None
        and any(
            covers(cover, name) and since + grace_ms <= at_ms for cover, since in covers_by_folder.get(path.parent, ())
        )
    ]


def hidden_names_sql(glob: str) -> str:
    """A scalar subquery: the file names the rule hides within one listing of ``glob`` at ``now()``.

    The same rule as :func:`counted`, for the catalog views (a plain DuckDB shell applies it too).
    """
    return f"""(
    WITH listed AS (
        SELECT parse_dirpath(file) AS dir, parse_filename(file) AS name,
               regexp_extract(parse_filename(file), '{_SQL_NAME}', ['writer', 'walend', 'kind', 'uid']) AS p
        FROM glob('{glob}')
    ), named AS (
        SELECT dir, name, p.writer AS writer, TRY_CAST(p.walend AS UBIGINT) AS walend,
               CASE p.kind WHEN '{FLUSH}' THEN 0 WHEN '{LEGACY_COMPACT}' THEN 1
                    WHEN '{MERGED}' THEN TRY_CAST(p.uid[1:4] AS INTEGER)
                    WHEN '{COVER}' THEN TRY_CAST(p.uid[1:4] AS INTEGER) END AS level,
               CASE WHEN p.kind IN ('{MERGED}', '{COVER}') THEN TRY_CAST(p.uid[5:18] AS BIGINT) ELSE 0 END AS active_ms
        FROM listed WHERE p.walend <> ''
    )
    SELECT coalesce(list(DISTINCT hidden.name), [])
    FROM named AS hidden JOIN named AS cover
      ON hidden.dir = cover.dir AND hidden.writer = cover.writer
         AND cover.level >= 1 AND cover.active_ms <= epoch_ms(now())
         AND hidden.level < cover.level AND hidden.walend <= cover.walend
)"""


def inactive_sql(filename_column: str) -> str:
    """True for rows of a merged segment not yet active (decided per file, from the scanned file's name)."""
    name = f"parse_filename({filename_column})"
    pattern = f"^(w[a-z0-9]+-)?\\d{{20}}-({MERGED}|{COVER})-\\d{{4}}(\\d{{14}})"
    return f"coalesce(TRY_CAST(regexp_extract({name}, '{pattern}', 3) AS BIGINT) > epoch_ms(now()), false)"
