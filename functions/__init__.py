"""The Azure Functions app, in layers from the bottom up (tests/unit/test_layers.py checks the order):
`domain/` (records, storage ports), `web/` (request parsing, routing, the HTTP edge), the API cores
`prediction/` < `training/` < `vision/`, `adapters/` (Azure Storage behind the ports), `bootstrap` (the
composition root), and the trigger modules (http_*, blob_ingest, queue_*, purge) that function_app.py
registers."""
