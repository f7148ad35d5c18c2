import sys

from storeguard.cli import main

sys.exit(main())
