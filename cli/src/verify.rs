//! `kubectl bpc verify`: prove end to end that a workload's capture reaches a collector.
