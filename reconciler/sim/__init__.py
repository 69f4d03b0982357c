"""Wire-real simulators of the Nomad HTTP API and the multipassd gRPC API."""
