"""Parse one ingestion file into typed rows of its source table, and rejects.

Shapes accepted (../shared/spec/star-schema.md, "Ingestion files in the wild"):
`{"<table>": [records]}` (any single key whose value is a list), a bare JSON array of records, or
JSON Lines (one object per line, blank lines ignored); a UTF-8 BOM is tolerated.

The package, by job (a file travels down this list):
- shapes.py        the shape, told from the first and last bytes (also used by ../chunks.py)
- reader.py        each shape read by Polars as all-String records, with slow paths for the rest
- json_lines.py    JSON Lines with bad lines: every line classified at once, good ones kept
- records.py       the all-String frame of records, and records decoded by json
- columns.py       how each source type is read from text (the column readers)
- typed.py         every column cast; unreadable, missing, implausible values reject their row
- plausibility.py  ParseLimits: the date window and the string cap
- tally.py         what problems are called, counted exactly, the first ones kept in detail
- redact.py        sensitive fields' values (bank accounts) scrubbed from every reject
- values.py        decoded JSON values as text
- file.py          parse_file / parse_array_items / rejected_file / ParsedFile: the above
                   put together

Record numbers are 1-based positions of the records in the file (for JSON Lines: among the
non-blank lines; the reason of a "<json>" reject names the physical line number too). A record
with several problems has one reject per problem; rejects are ordered by record number.
"""

from transforms.parse.file import ParsedFile, parse_array_items, parse_file, rejected_file
from transforms.parse.plausibility import DEFAULT_LIMITS, ParseLimits
from transforms.parse.tally import (
    FILE_FIELD,
    IMPLAUSIBLE_DATE,
    JSON_FIELD,
    LONE_SURROGATE,
    MISSING_REASON,
    RECORD_NUMBER,
    REJECT_COUNTS,
)

__all__ = [
    "DEFAULT_LIMITS",
    "FILE_FIELD",
    "IMPLAUSIBLE_DATE",
    "JSON_FIELD",
    "LONE_SURROGATE",
    "MISSING_REASON",
    "RECORD_NUMBER",
    "REJECT_COUNTS",
    "ParseLimits",
    "ParsedFile",
    "parse_array_items",
    "parse_file",
    "rejected_file",
]
