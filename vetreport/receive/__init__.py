"""Stage 1, receive: turning bucket notifications into upload events.

What belongs here: the upload event model, the S3/MinIO webhook and SQS receivers, the
local-folder watcher, and emitting Prefect events. Nothing here reads an upload's bytes.
"""
