"""`python -m supervisor._llmsup`: the same as the `llmsup` console script."""

import sys

from ._main import main

sys.exit(main())
