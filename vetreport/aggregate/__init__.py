"""Stage 5, aggregate: current curated data in, indicator values and report tables out.

What belongs here: loading curated submissions into DuckDB, running sql/, shaping the
report tables, and the year-on-year variance. Nothing here writes to the bucket.
"""
