"""The storage writer: Redis span streams into TimescaleDB / PostgreSQL."""
