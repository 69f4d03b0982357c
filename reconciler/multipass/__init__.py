"""Client for multipassd's gRPC API."""
