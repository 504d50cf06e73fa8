"""`python -m analyzer.lab --out DIR`: write every lab scenario's capture, truth.json and a README."""

import sys

from analyzer.lab.runner import main

sys.exit(main())
