"""The records and storage ports every API package shares (training, prediction, vision): the lowest layer of
functions/ after cvcore, importing nothing else of functions/ (tests/unit/test_layers.py checks it)."""
