"""The demo: synthetic uploads of Shaoxing's 17 schools and the walkthrough's files.

What belongs here: generating deterministic demo buckets from the targets and school
profiles kept as CSV beside the code. Nothing in the pipeline imports it.
"""
