"""Pure attribution logic: no grpc, nats, asyncpg or protobuf imports."""
