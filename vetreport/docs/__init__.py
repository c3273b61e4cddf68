"""Generated documentation: the Markdown files under docs/ that are built from the catalogue.

What belongs here: writers of docs/data-dictionary.md, docs/indicators.md and the settings
table, and the one command that regenerates them all.
"""
