"""`python -m services.drift`: the drift service."""

from runtime.server import run
from services.drift.server import build

if __name__ == "__main__":
    run("drift", build)
