import sys

from leadflow_platform.main import run_service
from leadflow_routing.app import SPEC

sys.exit(run_service(SPEC))
