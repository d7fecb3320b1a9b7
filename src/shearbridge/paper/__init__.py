"""The paper's house style: figure styles and labels (:mod:`.plotting`, read from the
registry) and number formatting for ``\\variable`` files (:mod:`.outputs`)."""
