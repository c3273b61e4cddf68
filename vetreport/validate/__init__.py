"""Stage 2, validate: an upload's bytes in, typed rows and findings out.

What belongs here: guarding and reading untrusted files, finding headers, normalising
and casting values, the layers of checks and the machine-readable report. Nothing here
writes to the bucket.
"""
