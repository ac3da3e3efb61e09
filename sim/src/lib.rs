//! bpc-sim: the GRE receiver simulator.
