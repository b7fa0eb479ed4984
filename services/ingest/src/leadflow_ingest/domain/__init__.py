"""Pure ingest logic: no grpc, nats, asyncpg or protobuf imports."""
