"""The Azure Functions app: trigger modules (http_*, blob_*, queue_*) over a core in `training/`,
storage adapters in `adapters/`, HTTP edge helpers in `web/`, and one composition root (`bootstrap`)."""
