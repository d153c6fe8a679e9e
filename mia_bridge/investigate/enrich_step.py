"""Enrichment as a step of ``mia investigate``: done, skipped (with the reason) or failed, like the others.
It lives in investigate/ (not enrich/) because step bookkeeping (``StepLog``) is the investigation's.

The pipeline calls ``run_enrich_step(backend, case_dir, steps, options)`` after the MailItemsAccessed
analysis has written ``analysis/``; message trace without permission (or absent) is a skip with the reason,
and the exposed ids are still listed, without metadata. Read mail left without sender/recipients is counted
by reason in the outcome and marks it for attention (the run exits 3), as ``mia enrich`` does.
"""

from __future__ import annotations

from pathlib import Path

from mia_bridge.bridge.backend import ExoBackend
from mia_bridge.enrich.api import EnrichOptions, EnrichResult, enrich_case
from mia_bridge.errors import MiaError, UsageError
from mia_bridge.investigate.steps import StepLog

STEP_NAME = "Affected parties (message trace)"


def run_enrich_step(
    backend: ExoBackend, case_dir: Path, steps: StepLog, options: EnrichOptions | None = None
) -> EnrichResult | None:
    """Run the enrichment and record its outcome in ``steps``; never raises a MiaError."""
    try:
        result = enrich_case(backend, case_dir, options)
    except UsageError as exc:  # no analysis in the case: nothing to enrich
        steps.skipped(STEP_NAME, exc.message)
        return None
    except MiaError as exc:
        steps.failed(STEP_NAME, exc.message)
        return None
    counts = result.summary["counts"]
    if result.trace_unavailable:
        steps.skipped(STEP_NAME, f"message trace unavailable: {result.trace_unavailable}; "
                      f"{counts['accessed_ids']} exposed message id(s) listed without sender/recipients")
        return result
    sources = ", ".join(f"{v} from {k}" for k, v in sorted(counts["accessed_metadata_sources"].items()))
    text = (f"{counts['accessed_ids']} message(s) read, {counts['accessed_with_metadata']} with sender and "
            f"recipients ({sources or 'none'}); {counts['potentially_exposed']} potentially exposed; "
            f"{counts['affected_addresses']} affected address(es), {counts['affected_external_domains']} "
            "external domain(s)")
    missing = counts["accessed_without_metadata"]
    if missing:
        why = "; ".join(f"{n}: {reason}" for reason, n in sorted(counts["accessed_without_metadata_reasons"].items()))
        text += f"; {missing} message(s) read WITHOUT sender/recipients ({why}; see exposed_messages.csv)"
        if not result.summary["mailbox_metadata"]["allowed"]:
            text += "; --allow-mailbox-metadata asks the mailbox for them"
    # A message read whose parties cannot be named is a hole in the notification list: worth attention
    # (exit 3), as `mia enrich` reports it, whatever the cause (beyond message trace's reach, never through
    # transport, deleted since).
    steps.done(STEP_NAME, text, attention=bool(missing), without_metadata=missing,
               without_metadata_reasons=dict(counts["accessed_without_metadata_reasons"]))
    return result
