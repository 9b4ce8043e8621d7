"""The edge container of a DockerFile export: `server.py` (a Custom Vision edge prediction server), the
Dockerfile and README templates. functions/training/exports packs them, with the cvcore modules the server
imports (inference, artifacts, boxes, imaging, urlfetch, errors: the cloud route's own code), into the zip."""
