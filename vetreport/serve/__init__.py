"""Stage 7, serve: running the pipeline as a service.

What belongs here: the local Prefect server's lifecycle and the Prefect automations the
service installs. The deployments themselves are in flows/.
"""
