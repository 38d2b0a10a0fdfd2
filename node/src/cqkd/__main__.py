import sys

from cqkd.cli import main

sys.exit(main())
