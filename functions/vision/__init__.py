"""The Image Analysis 4.0 model-customization API on the Custom Vision core (http_vision.py serves it).

dataset (PUT /computervision/datasets/{name})  -> a project of its own, the COCO files imported (a snapshot)
model   (PUT /computervision/models/{name})    -> an iteration of the training dataset's project
imageanalysis:analyze?model-name=              -> that iteration's ONNX through the prediction cache
"""
