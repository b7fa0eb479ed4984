"""Pure reporting logic: no grpc, nats, asyncpg or protobuf imports."""
