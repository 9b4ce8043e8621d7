"""The prediction path: published iterations answered from lazily loaded ONNX sessions (no torch).

published.py  (project, publish name) -> iteration, cached; the publish-change hook
session_cache.py  bounded, single-flight cache of onnxruntime sessions (ModelCache)
predict.py    one image through a loaded model -> Custom Vision predictions
service.py    the use case: resolve, load, predict, store (unless nostore)
scoring.py    review scores kept with a stored prediction (uncertainty, margin, image signature)
ports.py      the stored-prediction port; adapters/predictions.py implements it on Table + Blob storage
"""
