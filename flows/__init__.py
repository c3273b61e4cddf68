"""Prefect flows: thin orchestration over the vetreport package.

What belongs here: flows and tasks that decide what runs when, with retries, names, tags
and artifacts for operators. The work itself (reading, validating, aggregating,
publishing) lives in vetreport/, so it can be tested without Prefect.
"""
