"""The Training API's core: plain functions over the storage ports, raising cvcore.errors."""
