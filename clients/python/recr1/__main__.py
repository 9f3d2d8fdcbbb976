import sys

from recr1.cli import main

sys.exit(main())
