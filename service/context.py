"""What every stage of a run works with: the two roots, the settings, the lake, the ledger and
the catalog of the pass under way."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.catalog import Catalog
from service.lake import Lake
from service.ledger import Ledger
from service.settings import Settings
from service.storage import Storage
from transforms.parse import ParseLimits


@dataclass
class RunContext:
    ingestion: Storage
    processed: Storage
    settings: Settings
    limits: ParseLimits
    lake: Lake
    ledger: Ledger
    catalog: Catalog = field(default_factory=Catalog)  # loaded when a pass has work
