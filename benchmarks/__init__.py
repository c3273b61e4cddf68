"""Benchmarks that print figures: run by `make bench`, never by `make test`."""
