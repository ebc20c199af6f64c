"""SQL over the star tables: `totesys sql` (Polars SQL, read-only, time travel) and the named
queries shared with Athena (service/sql/named/*.sql, see infra/athena.py)."""
