//! `kubectl bpc sink`: the bpc-sim GRE receiver, run in-process.
