"""`customvision`: a command-line tool for Custom Vision (this service or Azure's), built on the official SDK."""
