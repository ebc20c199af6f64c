"""A deterministic generator of a realistic Totesys ingestion tree, for tests and benchmarks.

`iter_ingestion_files` yields `(ingestion key, file content)` one file at a time:

- a baseline at `start` (`baseline/<table>-<ts>.json`) of the seven source tables, plus one
  file of a table the transform ignores (`payment_type`), so its "skipped" path is exercised;
- then `updates` batches, 30 minutes apart (`updated/<table>-<ts>.json`): changed and new sales
  orders in every batch, and across the batches a department rename, an address change, a staff
  change and a new design; one order is changed in every batch, so it has `updates + 1` versions;
- in the last batch, a further full snapshot `baseline/sales_order-<ts>.json` of the live orders
  at their latest versions, minus a few deleted ones (deletion by absence).

Every file uses one of the shapes found in the wild (see the spec's "Ingestion files in the wild"):
`{"<table>": [...]}`, a bare array or JSON Lines; row timestamps as ISO with `T`, `str(datetime)`,
space with milliseconds or epoch milliseconds (without fraction when it is zero); unit_price as a
JSON number or a string; ids as strings in a few small files; file-name timestamps as
`2024-11-14T10:30:00.000000`, `str(datetime)` or `20241114T1030Z`.

The same arguments always give the same bytes. The large sales_order files are built with
vectorised Polars (random numbers come from `random.Random.randbytes`, so the output does not
depend on the Polars version's random generator).
"""

from service.synthetic.manifest import SyntheticManifest
from service.synthetic.tree import DEFAULT_START, iter_ingestion_files, write_ingestion_tree

__all__ = [
    "DEFAULT_START",
    "SyntheticManifest",
    "iter_ingestion_files",
    "write_ingestion_tree",
]
