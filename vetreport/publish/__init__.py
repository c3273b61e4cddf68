"""Stage 6, publish: versioned outputs for consumers, and reading them back.

What belongs here: writing a version (tables in every format, manifest, pointer), the
provisional/final status policy, reading published tables, what changed between
versions, and reconciling published figures with a reference.
"""
