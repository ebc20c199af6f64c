"""A deterministic generator of a realistic Totesys ingestion tree, for tests and benchmarks.

`iter_ingestion_files` yields `(ingestion key, file content)` one file at a time, for all eleven
Totesys tables:

- a baseline at `start` (`baseline/<table>-<ts>.json`) of every table: the six small ones
  (`dimensions`), sales_order (`sales`), payment_type, purchase_order (`purchases`, in the real
  snapshot's proportion to sales orders), transaction and payment (`payments`: one transaction per
  order, one payment per transaction, some already paid);
- then `updates` batches, 30 minutes apart (`updated/<table>-<ts>.json`): changed and new sales
  and purchase orders in every batch, the new orders' transactions and payments, a few payments
  paid (their paid version, last_updated moved), and across the batches a department rename, an
  address change, a staff change and a new design; one sales and one purchase order are changed
  in every batch, so they have `updates + 1` versions;
- in the last batch, a further full snapshot (`baseline/`) of purchase_order, payment and
  sales_order, the live rows at their latest versions, minus a few deleted orders and their
  payments (deletion by absence).

Every file uses one of the shapes found in the wild (see the spec's "Ingestion files in the wild"):
`{"<table>": [...]}`, a bare array or JSON Lines; row timestamps as ISO with `T`, `str(datetime)`,
space with milliseconds or epoch milliseconds (without fraction when it is zero); money as a JSON
number or a string; ids as strings in a few small files; `paid` as a JSON boolean or PostgreSQL's
`t`/`f`, `true`/`false`; file-name timestamps as `2024-11-14T10:30:00.000000`, `str(datetime)`
or `20241114T1030Z`.

The same arguments always give the same bytes. Every part draws from its own named random stream
(`randomness`), so the new tables changed nothing in the files of the seven the generator wrote
before them. The large files are built with vectorised Polars (random numbers come from
`random.Random.randbytes`, so the output does not depend on the Polars version's random
generator). `tree` orders the files; `manifest` says what was generated.
"""

from service.synthetic.manifest import SyntheticManifest
from service.synthetic.tree import DEFAULT_START, iter_ingestion_files, write_ingestion_tree

__all__ = [
    "DEFAULT_START",
    "SyntheticManifest",
    "iter_ingestion_files",
    "write_ingestion_tree",
]
