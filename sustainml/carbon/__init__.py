"""Carbon: the grid intensity of regions (``intensity``) and the rules for a problem's carbon fields
(``inputs``), shared by the task encoder, the carbon tracker and ``sustainml.tracking``."""
