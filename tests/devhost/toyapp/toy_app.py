"""A toy function app for devhost's tests: blueprints composed into one FunctionApp, like function_app.py."""

import azure.functions as func
from toy_http import bp as http_bp
from toy_triggers import bp as triggers_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(http_bp)
app.register_functions(triggers_bp)
