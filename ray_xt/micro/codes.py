"""The micro world's language codes, for the settings to check a study file against (the languages themselves:
``ray_xt.micro.languages``, whose table ``tests/test_layers.py`` keeps equal to this list)."""

LANGUAGE_CODES = ("en", "qca", "qcy", "qso", "qgr", "qka", "qhy")
