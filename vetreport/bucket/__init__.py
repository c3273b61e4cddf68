"""Stage 0, the bucket: the object store (a folder or S3) and every key the pipeline uses.

What belongs here: reading, writing, listing and conditional writes of objects, and the
key layout (uploads/, curated/, ledger/, reports/, published/, templates/). Nothing here
knows what a dataset means.
"""
