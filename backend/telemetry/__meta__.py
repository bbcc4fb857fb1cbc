"""Package metadata kept import-free so every module can read it."""
VERSION = "0.1.0"
