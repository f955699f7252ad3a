"""mcjepa: a notebook-driven research kit reproducing MC-JEPA (Bardes, Ponce, LeCun, 2023).

One ConvNeXt encoder learns motion (self-supervised PWC-style optical flow) and content (VICReg)
at the same time. See README.md for the two commands and the notebook tour.
"""

__version__ = "0.1.0"
