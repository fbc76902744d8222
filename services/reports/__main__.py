"""`python -m services.reports`: the reports service."""

from runtime.server import run
from services.reports.server import build

if __name__ == "__main__":
    run("reports", build)
