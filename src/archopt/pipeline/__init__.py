"""The main job end to end: design -> train -> compare -> report (``archopt run``)."""
