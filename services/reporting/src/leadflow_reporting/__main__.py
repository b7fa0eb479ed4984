import sys

from leadflow_platform.main import run_service
from leadflow_reporting.app import SPEC

sys.exit(run_service(SPEC))
