"""Stage 3, tell the school: what a school sees of its uploads.

What belongs here: the validation report as an HTML page, the school's workbook with bad
cells marked, its list of uploads, history warnings, and the blank Excel templates it
fills in.
"""
