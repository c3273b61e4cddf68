"""The command line: argument parsing and terminal rendering, calling the stages.

What belongs here: the ``vetreport`` command and how it prints tables and reports; no
business logic.
"""
