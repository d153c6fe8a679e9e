"""Who and what was exposed: exposed message ids enriched with sender, recipients and subject.

``api.enrich_case(backend, case_dir, options)`` reads a case's exposure scope (analysis tables and the
attacker context), looks the messages up in message trace (and, opt-in, the mailbox through Graph),
lists what synced folders and throttled windows potentially exposed, and writes
``exposed_messages.csv`` and ``affected_parties.csv``.
"""
