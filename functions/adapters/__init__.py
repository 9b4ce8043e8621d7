"""Azure Storage adapters for the Training API's ports."""
