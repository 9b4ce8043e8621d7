"""`python -m cvcli`: the same entry point as the `customvision` console script."""

from cvcli.main import main

main()
