"""The school portal: where a school's clerk signs in, uploads and sees the verdict.

A small web application, in Chinese: the clerk uploads files straight to the object store,
sees the verdict without reloading, and downloads reports, templates and the dictionary.

Modules: ``tokens`` (per-school sign-in secrets, stored hashed), ``limits`` (sign-in rate
limits), ``uploads`` (presigned POSTs, and the folder bucket's equivalent endpoint),
``app`` (the Starlette application and its pages), ``server`` (running it).
"""
