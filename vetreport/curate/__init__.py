"""Stage 4, curate: accepted rows into the curated zone, every outcome into the ledger.

What belongs here: ingesting a batch of uploads (validate, report, curate, record), the
ledger that says which submission counts, and completeness against the registry.
"""
