import sys

from qperf.cli import main

sys.exit(main())
