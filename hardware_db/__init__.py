"""Data package: the hardware database (TOML files; see docs/hardware_db.md)."""
