import sys
from pathlib import Path

# Tests import the packages from the source tree even without an install.
BACKEND = Path(__file__).resolve().parent.parent / "backend"
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Real Redis/PostgreSQL fixtures: redis_server, redis_url, postgres_server, postgres_url.
pytest_plugins = ["server_fixtures"]
