"""Type-2 history of the member dimensions (warehouse-stars.md, "Dimension history").

From every stored version of a dimension's source rows (`_state/source_history/<table>`: one row
per (key, last_updated)), the states of each member in business time:

- a state begins at the `last_updated` of a source row version: one of the member's own rows, or
  a row it joins (DimensionSpec.joins) that changed while the member referenced it (a department
  rename starts a state for every staff member then in it, an address change one for every
  counterparty at it);
- each state is the dimension's own `build` applied to the latest source rows at or before that
  moment, so a state shows exactly what the dimension showed (or would have shown) then;
- consecutive equal states are one row (an update that changes nothing the dimension shows adds
  no row); `valid_to` is the next state's `valid_from`, null while current.

All of a member's states at once: the candidate moments become surrogate member keys (one per
(member, moment)), each joined to the versions in effect then under surrogate keys too, and
`build` runs once over them all. Cost: one row per candidate moment, that is per version of the
member's own rows plus per version of each row it ever referenced, from its first version on.

Arrival order never matters: the states depend only on the set of versions. `apply_versions` is
the incremental step: the members touched by new versions (their own, or of rows they referenced)
are recomputed whole, everything else is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.dimensions import DIMENSIONS, DimensionSpec
from transforms.schemas import SOURCE_TABLES, TIMESTAMP

HISTORY_COLUMNS: dict[str, pl.DataType] = {
    "valid_from": TIMESTAMP,
    "valid_to": TIMESTAMP,
    "is_current": pl.Boolean(),
}
HISTORY_ROOT = "dimension_history"

Histories = dict[str, pl.DataFrame]  # source table -> every version of its rows
SEEDED = "seeded"  # a source history row taken from the mirror of a root written before it


def history_name(dimension: str) -> str:
    """`dim_staff` -> `dim_staff_history`."""
    return f"{dimension}_history"


def history_path(spec: DimensionSpec) -> str:
    """`dimension/staff` -> `dimension_history/staff`."""
    return f"{HISTORY_ROOT}/{spec.path.rsplit('/', 1)[-1]}"


def history_schema(spec: DimensionSpec) -> dict[str, pl.DataType]:
    return {**spec.schema, **HISTORY_COLUMNS}


# history table -> its dimension's declaration (every member dimension; dim_date has none)
HISTORIES: dict[str, DimensionSpec] = {history_name(n): s for n, s in DIMENSIONS.items()}
HISTORY_SOURCES: tuple[str, ...] = tuple(
    sorted({t for spec in DIMENSIONS.values() for t in spec.sources})
)


def _check(spec: DimensionSpec) -> None:
    if set(spec.sources[1:]) != set(spec.joins):
        raise ValueError(f"{spec.name}: every joined source needs its column in `joins`")


for _spec in DIMENSIONS.values():
    _check(_spec)


def source_columns(table: str) -> list[str]:
    return list(SOURCE_TABLES[table].columns)


def source_versions(rows: pl.DataFrame, table: str) -> pl.DataFrame:
    """The distinct versions (key, last_updated) among a batch's rows of a source table; on a
    tie the later-applied file wins (as `latest_source_rows` decides)."""
    key = SOURCE_TABLES[table].key
    if rows[key].n_unique() == rows.height:  # one version per member (a baseline)
        return rows if rows[key].is_sorted() else rows.sort(key)  # sorted: no copy
    order = ["last_updated"] + [c for c in ("file_seq", "record_number") if c in rows.columns]
    return rows.sort([key, *order]).unique(
        subset=[key, "last_updated"], keep="last", maintain_order=True
    )


def new_versions(incoming: pl.DataFrame, stored: pl.DataFrame, table: str) -> pl.DataFrame:
    """Incoming versions the stored history lacks: a version is (key, last_updated); one
    already stored stays as it is (redelivery stores nothing twice)."""
    if stored.is_empty():
        return incoming
    on = [SOURCE_TABLES[table].key, "last_updated"]
    return incoming.join(stored.select(on), on=on, how="anti", nulls_equal=True)


def empty_history(spec: DimensionSpec) -> pl.DataFrame:
    return pl.DataFrame(schema=history_schema(spec))


def _moments(spec: DimensionSpec, histories: Histories, own: pl.DataFrame) -> pl.DataFrame:
    """Candidate (member key, moment) pairs: each version of the member's own row, and each
    version of a row it joins (of those it ever referenced) from its first version on."""
    key = SOURCE_TABLES[spec.sources[0]].key
    first = own.group_by(key).agg(pl.col("last_updated").min().alias("_first"))
    parts = [own.select(key, pl.col("last_updated").alias("_at"))]
    for table, column in spec.joins.items():
        joined_key = SOURCE_TABLES[table].key
        times = histories[table].select(
            pl.col(joined_key).cast(own.schema[column]).alias(column),
            pl.col("last_updated").alias("_at"),
        )
        parts.append(
            own.select(key, column)
            .unique()
            .join(times, on=column)
            .join(first, on=key)
            .filter(pl.col("_at") >= pl.col("_first"))
            .select(key, "_at")
        )
    pairs = pl.concat(parts).unique()
    floors = _floors(spec, histories, own)
    if floors is not None:
        pairs = pairs.join(floors, on=key, how="left").filter(
            pl.col("_floor").is_null() | (pl.col("_at") >= pl.col("_floor"))
        )
    return pairs.select(key, "_at").sort("_at").with_row_index("_pair")


def _floors(spec: DimensionSpec, histories: Histories, own: pl.DataFrame) -> pl.DataFrame | None:
    """Members of a root whose history began before this code: their source history was seeded
    with the latest rows it held (`seeded`), earlier versions unknown. Such a member's history
    starts at the state the root held, from when that state began: the latest `last_updated`
    among its seeded row and the seeded rows it joined (before that, what it joined is unknown,
    not missing)."""
    if SEEDED not in own.columns or not own[SEEDED].any():
        return None
    key = SOURCE_TABLES[spec.sources[0]].key
    floors = own.filter(pl.col(SEEDED)).select(
        key, pl.col("last_updated").alias("_floor"), *spec.joins.values()
    )
    for table, column in spec.joins.items():
        joined = histories[table]
        if SEEDED not in joined.columns:
            continue
        seeds = joined.filter(pl.col(SEEDED)).select(
            pl.col(SOURCE_TABLES[table].key).cast(own.schema[column]).alias(column),
            pl.col("last_updated").alias("_joined"),
        )
        floors = floors.join(seeds, on=column, how="left").with_columns(
            pl.max_horizontal("_floor", "_joined").alias("_floor")
        )
        floors = floors.drop("_joined")
    return floors.group_by(key).agg(pl.col("_floor").max())


def _as_of(left: pl.DataFrame, right: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per row of `left`, the latest version of `right` (same `by`) at or before `_at`."""
    return left.sort("_at").join_asof(
        right.sort("last_updated"),
        left_on="_at",
        right_on="last_updated",
        by=by,
        strategy="backward",
        check_sortedness=False,
    )


def _own_moments(spec: DimensionSpec, histories: Histories, own: pl.DataFrame) -> pl.DataFrame:
    """A dimension of one source table (no joins): its moments are the versions of the member's
    own row, and the state at each is that very row, what `_moments` and the as-of join find
    for it, without the sorts and the join (a baseline of 1.4M transactions: both are copies
    of the whole table). The rows of `own` are distinct versions (the source history stores
    each (key, last_updated) once)."""
    key = SOURCE_TABLES[spec.sources[0]].key
    rows = own.select(source_columns(spec.sources[0])).with_columns(
        pl.col("last_updated").alias("_at")
    )
    floors = _floors(spec, histories, own)
    if floors is not None:
        rows = (
            rows.join(floors, on=key, how="left")
            .filter(pl.col("_floor").is_null() | (pl.col("_at") >= pl.col("_floor")))
            .drop("_floor")
        )
    return rows.with_row_index("_pair")


def _built_states(spec: DimensionSpec, histories: Histories, own: pl.DataFrame) -> pl.DataFrame:
    """The dimension row of every candidate (member, moment), built by the spec's `build`."""
    primary = spec.sources[0]
    key = SOURCE_TABLES[primary].key
    if spec.joins:
        pairs = _moments(spec, histories, own)
        at = _as_of(pairs, own.select(source_columns(primary)), key)
    else:
        at = _own_moments(spec, histories, own)
    pair = pl.col("_pair").cast(own.schema[key])
    frames: dict[str, pl.DataFrame] = {}
    surrogate = {key: pair.alias(key)}
    for table, column in spec.joins.items():
        joined_key = SOURCE_TABLES[table].key
        versions = histories[table].select(source_columns(table))
        versions = versions.with_columns(pl.col(joined_key).cast(own.schema[column]))
        matched = _as_of(
            at.select("_pair", "_at", column), versions.rename({joined_key: column}), column
        ).filter(pl.col("last_updated").is_not_null())
        frames[table] = matched.select(
            pl.col("_pair").cast(histories[table].schema[joined_key]).alias(joined_key),
            *[c for c in source_columns(table) if c != joined_key],
        ).select(source_columns(table))
        surrogate[column] = pair.alias(column)
    frames[primary] = at.with_columns(*surrogate.values()).select(source_columns(primary))
    built, _warnings = spec.build(*[frames[t] for t in spec.sources])
    restore = [c for c in spec.joins.values() if c in spec.schema]
    back = at.select(
        pl.col("_pair").cast(spec.schema[spec.key]).alias("_surrogate"),
        pl.col(key).cast(spec.schema[spec.key]).alias("_member"),
        "_at",
        *restore,
    )
    return (
        built.drop(restore)
        .rename({spec.key: "_surrogate"})
        .join(back, on="_surrogate")
        .drop("_surrogate")
        .rename({"_member": spec.key})
    )


def member_states(
    spec: DimensionSpec, histories: Histories, members: pl.Series | None = None
) -> pl.DataFrame:
    """The type-2 rows of every member (or of `members`, keys of the member's own source
    table) from every version of the dimension's sources, sorted by member and valid_from."""
    primary = spec.sources[0]
    key = SOURCE_TABLES[primary].key
    own = histories[primary]
    if members is not None:
        own = own.filter(pl.col(key).is_in(members.cast(own.schema[key]).implode()))
    if own.is_empty():
        return empty_history(spec)
    states = _built_states(spec, histories, own).sort([spec.key, "_at"])
    values = [c for c in spec.schema if c != spec.key]
    # Sorted by member: plain shifts compare each state with the member's previous one (a
    # window per member, `.over`, cost ~2 s on 400k transactions).
    member = pl.col(spec.key)
    first = member.ne_missing(member.shift(1))
    moved = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in values])
    changes = states.select(first | moved).to_series()
    kept = states if changes.all() else states.filter(changes)  # a baseline: every state
    same_member_next = member.eq_missing(member.shift(-1))
    return kept.with_columns(
        pl.col("_at").alias("valid_from"),
        pl.when(same_member_next).then(pl.col("_at").shift(-1)).alias("valid_to"),
    ).select(
        *[pl.col(c).cast(t) for c, t in spec.schema.items()],
        pl.col("valid_from").cast(TIMESTAMP),
        pl.col("valid_to").cast(TIMESTAMP),
        pl.col("valid_to").is_null().alias("is_current"),
    )


def affected_members(spec: DimensionSpec, histories: Histories, new: Histories) -> pl.Series:
    """Keys of the members whose states new versions can change: members with a new version of
    their own row, and members that ever referenced a joined row with a new version."""
    primary = spec.sources[0]
    key = SOURCE_TABLES[primary].key
    own = histories[primary]
    dtype = own.schema[key]
    parts = [new[primary][key].cast(dtype)] if primary in new else []
    for table, column in spec.joins.items():
        if table in new and not new[table].is_empty():
            changed = new[table][SOURCE_TABLES[table].key].cast(own.schema[column])
            parts.append(own.filter(pl.col(column).is_in(changed.implode()))[key].cast(dtype))
    if not parts:
        return pl.Series(key, [], dtype=dtype)
    return pl.concat(parts).unique().sort().alias(key)


def changed_members(
    spec: DimensionSpec, stored: pl.DataFrame, recomputed: pl.DataFrame, members: pl.Series
) -> pl.Series:
    """Of `members`, those whose stored rows differ from the recomputed ones."""
    keys = members.cast(spec.schema[spec.key]).implode()
    before = stored.filter(pl.col(spec.key).is_in(keys)).select(recomputed.columns)
    after = recomputed.filter(pl.col(spec.key).is_in(keys))
    on = list(recomputed.columns)
    differ = pl.concat(
        [
            before.join(after, on=on, how="anti", nulls_equal=True)[spec.key],
            after.join(before, on=on, how="anti", nulls_equal=True)[spec.key],
        ]
    )
    return differ.unique().sort()


@dataclass(frozen=True)
class HistoryUpdate:
    """What new versions change in one dimension's history: the members whose rows are
    replaced (`None`: the whole table is written, it does not exist yet) and their new rows."""

    members: pl.Series | None
    rows: pl.DataFrame

    @property
    def empty(self) -> bool:
        return self.members is not None and self.members.is_empty()


def with_versions(old: Histories, new: Histories) -> Histories:
    return {
        t: pl.concat([rows, new[t].select(rows.columns)]) if t in new else rows
        for t, rows in old.items()
    }


def apply_versions(
    spec: DimensionSpec, old: Histories, new: Histories, exists: bool
) -> HistoryUpdate:
    """The incremental step, without reading the stored history: it holds the states of `old`
    (every version stored before, of every source of the dimension), so only the members that
    `new` versions touch are recomputed, before and after, and those whose states differ are
    replaced. `exists` False: no table yet, every member is written."""
    histories = with_versions(old, new)
    if not exists:
        return HistoryUpdate(None, member_states(spec, histories))
    members = affected_members(spec, histories, new)
    if members.is_empty():
        return HistoryUpdate(members, empty_history(spec))
    before = member_states(spec, old, members)
    after = member_states(spec, histories, members)
    changed = changed_members(spec, before, after, members)
    return HistoryUpdate(changed, after.filter(pl.col(spec.key).is_in(changed.implode())))


def replace_members(stored: pl.DataFrame, update: HistoryUpdate, key: str) -> pl.DataFrame:
    """The stored history with an update applied (what the table holds after the write)."""
    if update.members is None:
        return update.rows
    kept = stored.filter(~pl.col(key).is_in(update.members.implode()))
    return pl.concat([kept, update.rows.select(stored.columns)]).sort([key, "valid_from"])
