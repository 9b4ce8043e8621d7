"""The portal's static files (static/) and the table that serves them (assets.py)."""
