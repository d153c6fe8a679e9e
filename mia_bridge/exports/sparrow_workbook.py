"""``Summary_Export.xlsx`` as Sparrow's ``New-ExcelFromCsv`` leaves it, written without Excel.

Sparrow opens each ``$ExportDir\\*.csv`` (Get-ChildItem order: NTFS sorts names case-insensitively),
copies its sheet *before* the first sheet and renames that sheet ``BaseName -replace
'_Operations_.*',''``; the default sheets are deleted last. So the sheets come out in reverse name
order. AppInvestigations is a sub-folder and stays out. Cells are typed as Excel types a CSV it
opens (numbers, TRUE/FALSE; numbers keep 15 significant digits), except that a cell Excel would
evaluate as a formula stays text here: this workbook is the safe way to open the Sparrow files.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from mia_bridge.errors import ExportError

EXCEL_SHEET_NAME_MAX = 31
EXCEL_MAX = 9.99999999999999e307  # the largest number Excel accepts
AUTOFIT_MAX = 255  # Excel's widest column
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*(%?)\s*$")


def sheet_name(csv_name: str) -> str:
    """Sparrow's rename: the base name without ``_Operations_.*`` (PowerShell -replace: case-insensitive)."""
    stem = csv_name[:-4] if csv_name.lower().endswith(".csv") else csv_name
    return re.sub(r"_Operations_.*", "", stem, flags=re.IGNORECASE)


def sheet_order(csv_names: Sequence[str]) -> list[str]:
    """The CSVs in the order their sheets end up: each copied before the first, so reverse name order."""
    return sorted(csv_names, key=lambda n: n.upper(), reverse=True)


def excel_value(text: str) -> str | float | bool | None:
    """What Excel makes of one CSV field when it opens the file (None: an empty cell)."""
    if text == "":
        return None
    upper = text.strip().upper()
    if upper in ("TRUE", "FALSE"):
        return upper == "TRUE"
    match = _NUMBER.match(text)
    if match is None:
        return text
    try:
        number = Decimal(text.strip().rstrip("%").strip())
    except InvalidOperation:
        return text
    if match.group(3):
        number /= 100
    if number != 0:  # Excel keeps 15 significant digits and drops the rest
        digits = number.adjusted() - 14
        number = number.scaleb(-digits).to_integral_value(rounding="ROUND_DOWN").scaleb(digits)
    result = float(number)
    return result if math.isfinite(result) and abs(result) <= EXCEL_MAX else text  # beyond Excel: text


def write_summary_workbook(export_dir: Path, csv_files: Sequence[Path], delimiter: str = ",") -> Path | None:
    """Write the workbook from the top-level CSVs (None when there is none), Sparrow's sheet order."""
    import xlsxwriter  # deferred: only needed when the workbook is built

    if not csv_files:
        return None
    by_name = {p.name: p for p in csv_files}
    target = export_dir / "Summary_Export.xlsx"
    try:
        workbook = xlsxwriter.Workbook(
            str(target),
            {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
             "constant_memory": True},  # rows are streamed in order: memory stays flat for big sheets
        )  # fmt: skip
        used: set[str] = set()
        for name in sheet_order(list(by_name)):
            title = _unique_title(sheet_name(name), name, used)
            sheet = workbook.add_worksheet(title)
            text = by_name[name].read_bytes().decode("ascii", errors="replace")
            widths: dict[int, int] = {}
            for r, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)):
                for c, cell in enumerate(row):
                    widths[c] = max(widths.get(c, 0), len(cell))
                    value = excel_value(cell)
                    if value is None:
                        continue
                    if isinstance(value, bool):
                        sheet.write_boolean(r, c, value)
                    elif isinstance(value, float):
                        sheet.write_number(r, c, value)
                    else:
                        sheet.write_string(r, c, value)
            for c, width in widths.items():  # Sparrow AutoFits each copied sheet; approximated by text length
                sheet.set_column(c, c, min(AUTOFIT_MAX, width + 1) if width else None)
        workbook.close()
    except OSError as exc:
        raise ExportError(f"{target}: cannot write workbook: {exc}", path=str(target)) from exc
    return target


def _unique_title(wanted: str, file_name: str, used: set[str]) -> str:
    """Sparrow's name if Excel accepts it; else the rename fails and the sheet keeps Excel's own name for
    the opened CSV (its base name cut to 31), with " (2)" ... when a copy meets a sheet of that name."""
    title = wanted
    if not title or len(title) > EXCEL_SHEET_NAME_MAX or title.lower() in used or re.search(r"[\[\]:*?/\\]", title):
        base = re.sub(r"[\[\]:*?/\\]", "_", file_name[:-4] if file_name.lower().endswith(".csv") else file_name)
        title = base[:EXCEL_SHEET_NAME_MAX]
        n = 2
        while title.lower() in used:
            suffix = f" ({n})"
            title = base[: EXCEL_SHEET_NAME_MAX - len(suffix)] + suffix
            n += 1
    used.add(title.lower())
    return title
