//! kubectl-bpc: the kubectl plugin.
