"""What reporting consumes from the bus."""
