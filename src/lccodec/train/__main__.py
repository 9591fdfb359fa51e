"""`python -m lccodec.train`: the same as `lic train`."""
from .cli import main

main()
