"""Pure routing logic: no grpc, nats, asyncpg or protobuf imports."""
