"""The Azure Functions app: composes the blueprints, nothing else."""

import azure.functions as func

from functions.blob_ingest import bp as blob_ingest
from functions.http_portal import bp as http_portal
from functions.http_prediction import bp as http_prediction
from functions.http_training import bp as http_training
from functions.http_vision import bp as http_vision
from functions.purge import bp as purge
from functions.queue_events import bp as queue_events
from functions.queue_imports import bp as queue_imports

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(http_training)
app.register_functions(http_prediction)
app.register_functions(blob_ingest)
app.register_functions(queue_events)
app.register_functions(queue_imports)
app.register_functions(purge)
app.register_functions(http_vision)
app.register_functions(http_portal)
