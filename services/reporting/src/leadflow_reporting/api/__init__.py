"""gRPC adapter: request checks, proto mapping, servicer."""
