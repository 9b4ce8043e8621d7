"""HTTP edge: request parsing, routing, key checks and error translation. No business rules here."""
