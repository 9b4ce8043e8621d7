"""Azure Storage adapters for the ports of domain/ (metadata, blobs, queues), prediction/ (stored predictions)
and vision/ (the Image Analysis registry). They sit above the packages whose ports they implement; only
bootstrap (the composition root) builds them, so no core module imports an adapter."""
