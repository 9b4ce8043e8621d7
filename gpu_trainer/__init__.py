"""The trainer container: takes jobs from the `training-jobs` queue, trains with torch, evaluates, exports
ONNX and writes artifacts back to Blob storage. Arrives with the training issue; the storage layout and
settings it will use already live in `cvcore`."""
