"""predictor: AIO-P, an all-in-one neural performance predictor over OpGraphs."""
